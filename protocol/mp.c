/* Placeholder until the codec lands. */
#include "mp.h"
