/* Placeholder until the network layer lands. */
#include "store.h"
