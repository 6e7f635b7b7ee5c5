/* main.c - placeholder, replaced by the CLI. */
#include <stdio.h>
int main(void) { puts("herald " HERALD_VERSION); return 0; }
