/* engine.c - what every engine shares: the calling worker's id (engine.h). */
#include "engine/engine.h"

_Thread_local int hr_engine_worker = -1;
