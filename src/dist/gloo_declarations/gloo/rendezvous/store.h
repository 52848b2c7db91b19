// See declarations.h: the one stand-in for the Gloo headers the wheel leaves out.
#pragma once
#include "../declarations.h"
