// tessera/core/version.h -- every version tessera has, in one place (torch-free).
//
// The release (semantic versioning: the C++ headers under cpp/include and the Python names in
// each module's __all__ are the API), the wire protocol spoken between devices and servers
// (docs/wire-protocol.md; a peer of another version is refused, naming both), and the format
// of atom stores on disk (manifest.json's "format"). CMake and setup.py read the release from
// this file; Python's tessera.__version__ and `tessera --version` come from the extension
// built with it. CHANGELOG.md says what changed.
#pragma once

#include <cstdint>

// The release's major version (semantic versioning: a change of the API raises it from 1.0 on).
#define TESSERA_VERSION_MAJOR 0
// The release's minor version.
#define TESSERA_VERSION_MINOR 2
// The release's patch version.
#define TESSERA_VERSION_PATCH 0
// The release as "MAJOR.MINOR.PATCH".
#define TESSERA_VERSION_STRING "0.2.0"

namespace tessera {

inline constexpr const char* kVersionString = TESSERA_VERSION_STRING;  // "0.2.0"; Python's tessera.__version__
inline constexpr uint16_t kWireProtocolVersion = 3;  // a peer of another version is refused
inline constexpr const char* kAtomStoreFormat = "tessera-atom-store/1";  // manifest.json's "format"

}  // namespace tessera
