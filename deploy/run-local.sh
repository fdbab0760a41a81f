#!/bin/sh
echo "run-local: not built yet" >&2
exit 1
