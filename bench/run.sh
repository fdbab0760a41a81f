#!/bin/sh
echo "bench: nothing yet"
