/* worker/main.c - placeholder until its issue lands. */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "not built yet\n");
    return 1;
}
