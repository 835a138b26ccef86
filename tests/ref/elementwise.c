/* ref/elementwise.c: double-precision references (placeholder). */
#include "elementwise.h"
typedef int dsd_ref_elementwise_placeholder;
