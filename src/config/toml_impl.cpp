// toml++'s implementation, compiled here once (its documented TOML_IMPLEMENTATION switch) instead
// of linked from libtomlplusplus.so; every other file includes its declarations only
// (TOML_HEADER_ONLY=0, CMakeLists.txt says why).
#define TOML_IMPLEMENTATION 1
#include <toml++/toml.h>
