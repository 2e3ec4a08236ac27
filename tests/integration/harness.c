/* Placeholder until the harness lands. */
#include "codec.h"
