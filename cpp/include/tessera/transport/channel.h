// tessera/transport/channel.h -- request/reply with a server, as a value.
//
//   auto ch = connect_zmq({.endpoint = "tcp://127.0.0.1:41234"});
//   ch = emulate(std::move(ch), link, Emulation::Account);   // optional: an emulated link
//   Expected<Exchange> r = ch->call(header, body, tensors, /*timeout_ms=*/500);
//   if (!r) log(r.error()); else use(r->reply, r->bytes_up, r->link_ms);
//
// A Channel sends one message and waits for the reply with the same request id
// (it numbers requests itself). A timeout, an unreachable server, a ZeroMQ error
// or a malformed reply is an Expected without a value, saying why; the channel
// then drops its connection (reset) so a late reply can never be taken for a later
// request's. Not thread-safe: one caller at a time (Deployment holds a lock).
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "tessera/core/expected.h"
#include "tessera/transport/link.h"
#include "tessera/transport/message.h"

namespace tessera::transport {

// One request and its reply.
struct Exchange {
  Message reply;                        // the server's Reply (or Error / Busy)
  size_t bytes_up = 0, bytes_down = 0;  // on the wire
  double link_ms = 0;                   // emulated link time, both ways (0 without a Link)
};

// Request/reply with one server (above). Not thread-safe: one caller at a time.
class Channel {
 public:
  virtual ~Channel() = default;
  // Sends `h` (its request_id is set here), body and tensors (encoded with `codecs`, as
  // send_message takes them); waits up to timeout_ms for the reply. Expected outcomes are
  // values; wrong input (an undefined tensor, a dtype the wire cannot carry) throws
  // InvalidArgument.
  virtual Expected<Exchange> call(Header h, const std::string& body, const std::vector<at::Tensor>& tensors,
                                  int timeout_ms, const std::vector<Codec>& codecs) = 0;
  // call() with every tensor raw.
  Expected<Exchange> call(Header h, const std::string& body, const std::vector<at::Tensor>& tensors, int timeout_ms) {
    return call(h, body, tensors, timeout_ms, {});
  }
  // Drops the connection; the next call connects again.
  virtual void reset() = 0;
  // How long a send may wait for the server to accept it (a dead server is noticed at send
  // time; 0 = never wait). A send that did not go out leaves the connection as it is, so a
  // server that comes back is reconnected in the background meanwhile.
  virtual void set_send_timeout(int ms) = 0;
  // Where it connects ("tcp://host:port").
  virtual const std::string& endpoint() const = 0;
  // The emulated link under this channel, if any (nullptr otherwise).
  virtual const Link* link() const { return nullptr; }
  // How an emulating channel charges its link's time (Sleep for channels without a link).
  virtual Emulation emulation() const { return Emulation::Sleep; }
};

// Options of connect_zmq.
struct ZmqChannelOptions {
  std::string endpoint;  // "tcp://127.0.0.1:41234"
  // CURVE (all three or none): the server's public key, this client's key pair (Z85).
  std::string curve_server_key, curve_public_key, curve_secret_key;
  int send_timeout_ms = 1000;  // a send that cannot go out within this fails (ZMQ_SNDTIMEO)
  uint64_t max_reply_bytes = 1ull << 34;  // largest reply accepted (decoded bytes), else the call fails saying so
};

// A DEALER socket with ZMQ_IMMEDIATE (a dead server is noticed at send time).
// Connects now: a malformed endpoint or bad keys throw InvalidArgument naming them.
std::unique_ptr<Channel> connect_zmq(const ZmqChannelOptions& options);

// Every message through `link`: its time is slept (Sleep) or only added to
// Exchange::link_ms (Account; the transfer itself stays real). The uplink is charged
// the bytes that really went out (encoded by the codecs), once the exchange is over.
std::unique_ptr<Channel> emulate(std::unique_ptr<Channel> inner, std::shared_ptr<Link> link, Emulation mode);

}  // namespace tessera::transport
