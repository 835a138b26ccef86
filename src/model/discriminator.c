/* discriminator.c: placeholder (being implemented). */
#include "internal.h"
