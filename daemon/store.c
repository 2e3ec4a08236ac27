/* Placeholder until the store lands. */
#include "store.h"
