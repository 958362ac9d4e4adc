#ifndef RELAY_CSODIUM_SHIM_H
#define RELAY_CSODIUM_SHIM_H
#include <sodium.h>
#endif
