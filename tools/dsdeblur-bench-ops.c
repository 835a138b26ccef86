/*
 * dsdeblur-bench-ops: per-op micro-benchmark (placeholder until the ops land).
 */
#include "cli.h"

int main(void)
{
    return 0;
}
