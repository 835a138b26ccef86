/* ref/depthwise.c: double-precision references (placeholder). */
#include "depthwise.h"
typedef int dsd_ref_depthwise_placeholder;
