/* ref/adam.c: placeholder. */
#include "adam.h"
typedef int dsd_ref_adam_placeholder;
