// fuzz/fuzz_manifest.cpp -- libFuzzer target: the atom store's manifest reader (torch-free).
//
// Input: the text of a manifest.json. Runs what open_store (atoms/store.cpp) runs before it
// opens any TorchScript file: parse_manifest (JSON, every field's presence and type, every
// id's range) and index_atoms (value producers, the AtomDag, AtomDag::validate). Checks on
// what parse_manifest accepts: writing it back (manifest_text) and reading that again
// succeeds and writes the same text. A tessera::Error is the expected answer to a malformed
// manifest; anything else (a crash, a sanitizer report, another exception such as a raw
// nlohmann::json error, a broken check) is a finding.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common.h"
#include "tessera/atoms/manifest.h"
#include "tessera/core/error.h"

using namespace tessera;
using tessera::fuzz::fail;
using tessera::fuzz::refused;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  Manifest m;
  try {
    m = parse_manifest(text, "fuzz/manifest.json");
  } catch (const tessera::Error& e) {
    refused(e);  // refused by name: the expected outcome
    return 0;
  }
  const std::string again = manifest_text(m);
  try {
    if (manifest_text(parse_manifest(again, "fuzz/manifest.json (written back)")) != again)
      fail("manifest_text(parse_manifest(manifest_text(m))) differs from manifest_text(m)");
  } catch (const tessera::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    fail("a manifest written back from an accepted one is refused");
  }
  try {
    AtomIndex ix = index_atoms(m.graph, m.atoms);
    if (ix.dag.num_atoms != static_cast<int>(m.atoms.size())) fail("the DAG's atom count differs");
  } catch (const tessera::Error& e) {
    refused(e);  // an inconsistent DAG (a consumer before its producer, negative bytes), refused by name
  }
  return 0;
}
