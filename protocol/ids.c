/* Placeholder until the codec lands. */
#include "ids.h"
