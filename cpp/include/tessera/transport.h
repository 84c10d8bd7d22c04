// tessera/transport.h -- links (emulated), the wire protocol, ZeroMQ channels and security.
//
// The public API of this layer: one include for a C++ product (tessera/tessera.h includes
// every layer). Layers and their rules: docs/ARCHITECTURE.md.
#pragma once

#include "tessera/transport/link.h"
#include "tessera/transport/wire.h"
#include "tessera/transport/message.h"
#include "tessera/transport/channel.h"
#include "tessera/transport/proxy.h"
#include "tessera/transport/security.h"
