#include "simam.h"
