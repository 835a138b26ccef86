/* ref/dropout.c: double-precision references (placeholder). */
#include "dropout.h"
typedef int dsd_ref_dropout_placeholder;
