// TEMPORARY placeholder so the layer links while the reader and writer are written.
#include "gguf/reader.h"
