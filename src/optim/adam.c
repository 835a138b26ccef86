/* adam.c: placeholder. */
#include "internal.h"
