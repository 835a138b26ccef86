/* ref/pool.c: double-precision references (placeholder). */
#include "pool.h"
typedef int dsd_ref_pool_placeholder;
