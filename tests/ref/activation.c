/* ref/activation.c: double-precision references (placeholder). */
#include "activation.h"
typedef int dsd_ref_activation_placeholder;
