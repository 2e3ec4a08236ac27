/* Placeholder until the codec lands. */
#include "codec.h"
