// transport/channel.cpp -- the ZeroMQ channel and the emulated-link wrapper (see
// tessera/transport/channel.h).
#include "tessera/transport/channel.h"

#include <chrono>
#include <thread>

#include "tessera/core/error.h"

namespace tessera::transport {

namespace {

using Clock = std::chrono::steady_clock;

class ZmqChannel final : public Channel {
 public:
  explicit ZmqChannel(ZmqChannelOptions o) : opt_(std::move(o)) {
    const bool curve = !opt_.curve_server_key.empty() || !opt_.curve_public_key.empty() ||
                       !opt_.curve_secret_key.empty();
    TESSERA_CHECK(!curve || (opt_.curve_server_key.size() == 40 && opt_.curve_public_key.size() == 40 &&
                             opt_.curve_secret_key.size() == 40),
                  InvalidArgument, "CURVE needs the server's public key and this client's key pair (40-char Z85 each)");
    TESSERA_CHECK(opt_.send_timeout_ms > 0, InvalidArgument, "send_timeout_ms must be > 0, got {}",
                  opt_.send_timeout_ms);
    socket();  // a malformed endpoint is refused here, by name
  }
  ~ZmqChannel() override {
    sock_.reset();
    ctx_.close();
  }

  using Channel::call;
  Expected<Exchange> call(Header h, const std::string& body, const std::vector<at::Tensor>& tensors,
                          int timeout_ms, const std::vector<Codec>& codecs) override {
    h.request_id = next_id_++;
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    try {
      bool sent = false;
      auto r = exchange(socket(), h, body, tensors, codecs, timeout_ms, deadline, sent);
      if (!r && sent) reset();  // a late reply must never be taken for a later request's
      return r;
    } catch (const zmq::error_t& e) {  // EINTR, a closed context, ...: the caller falls back
      reset();
      return Expected<Exchange>::failure(fmt::format("ZeroMQ error talking to {}: {}", opt_.endpoint, e.what()));
    }
  }

  void reset() override { sock_.reset(); }
  void set_send_timeout(int ms) override {
    TESSERA_CHECK(ms >= 0, InvalidArgument, "a send timeout must be >= 0 ms, got {}", ms);
    opt_.send_timeout_ms = ms;
    if (sock_) sock_->set(zmq::sockopt::sndtimeo, ms);
  }
  const std::string& endpoint() const override { return opt_.endpoint; }

 private:
  zmq::socket_t& socket() {
    if (!sock_) {
      sock_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::dealer);
      sock_->set(zmq::sockopt::linger, 0);
      sock_->set(zmq::sockopt::immediate, 1);
      sock_->set(zmq::sockopt::sndtimeo, opt_.send_timeout_ms);
      if (!opt_.curve_server_key.empty()) {
        sock_->set(zmq::sockopt::curve_serverkey, opt_.curve_server_key);
        sock_->set(zmq::sockopt::curve_publickey, opt_.curve_public_key);
        sock_->set(zmq::sockopt::curve_secretkey, opt_.curve_secret_key);
      }
      try {
        sock_->connect(opt_.endpoint);
      } catch (const zmq::error_t& e) {
        sock_.reset();
        TESSERA_THROW(InvalidArgument, "cannot connect to server endpoint '{}': {}", opt_.endpoint, e.what());
      }
    }
    return *sock_;
  }

  Expected<Exchange> exchange(zmq::socket_t& s, const Header& h, const std::string& body,
                              const std::vector<at::Tensor>& tensors, const std::vector<Codec>& codecs,
                              int timeout_ms, Clock::time_point deadline, bool& sent) {
    Exchange ex;
    if (!send_message(s, h, body, tensors, /*delimiter=*/true, false, &ex.bytes_up, codecs))
      return Expected<Exchange>::failure(
          fmt::format("server {} not reachable within {} ms", opt_.endpoint, opt_.send_timeout_ms));
    sent = true;
    while (true) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) break;
      zmq::pollitem_t items[] = {{static_cast<void*>(s), 0, ZMQ_POLLIN, 0}};
      zmq::poll(items, 1, std::chrono::milliseconds(left));
      if (!(items[0].revents & ZMQ_POLLIN)) break;
      std::vector<zmq::message_t> frames;
      if (!zmq::recv_multipart(s, std::back_inserter(frames), zmq::recv_flags::dontwait)) continue;
      size_t bytes = 0;
      for (const auto& f : frames) bytes += f.size();
      try {
        Message m = decode_message(frames, 1, opt_.max_reply_bytes);
        if (m.header.request_id != h.request_id) continue;  // a late reply to an earlier request
        ex.reply = std::move(m);
        ex.bytes_down = bytes;
        return ex;
      } catch (const Error& e) {
        return Expected<Exchange>::failure("malformed reply: " + e.message());
      }
    }
    return Expected<Exchange>::failure(fmt::format("no reply from {} within {} ms", opt_.endpoint, timeout_ms));
  }

  ZmqChannelOptions opt_;
  zmq::context_t ctx_{1};
  std::unique_ptr<zmq::socket_t> sock_;
  uint64_t next_id_ = 1;
};

class EmulatedChannel final : public Channel {
 public:
  EmulatedChannel(std::unique_ptr<Channel> inner, std::shared_ptr<Link> link, Emulation mode)
      : inner_(std::move(inner)), link_(std::move(link)), mode_(mode) {
    TESSERA_CHECK(inner_ && link_, InvalidArgument, "an emulated channel needs a channel and a link");
  }

  using Channel::call;
  Expected<Exchange> call(Header h, const std::string& body, const std::vector<at::Tensor>& tensors,
                          int timeout_ms, const std::vector<Codec>& codecs) override {
    auto r = inner_->call(h, body, tensors, timeout_ms, codecs);
    // The uplink carries what went out: the encoded bytes (a failed call: the raw message).
    const double up = r ? static_cast<double>(r->bytes_up) : static_cast<double>(message_bytes(body, tensors));
    double ms = wait(link_->transmit(up));
    if (!r) return r;
    ms += wait(link_->transmit(static_cast<double>(r->bytes_down), false));
    r->link_ms = ms;
    return r;
  }
  void reset() override { inner_->reset(); }
  void set_send_timeout(int ms) override { inner_->set_send_timeout(ms); }
  const std::string& endpoint() const override { return inner_->endpoint(); }
  const Link* link() const override { return link_.get(); }
  Emulation emulation() const override { return mode_; }

 private:
  double wait(double ms) const {
    if (ms > 0 && mode_ == Emulation::Sleep) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(ms));
    return ms;
  }
  std::unique_ptr<Channel> inner_;
  std::shared_ptr<Link> link_;
  Emulation mode_;
};

}  // namespace

std::unique_ptr<Channel> connect_zmq(const ZmqChannelOptions& options) {
  return std::make_unique<ZmqChannel>(options);
}

std::unique_ptr<Channel> emulate(std::unique_ptr<Channel> inner, std::shared_ptr<Link> link, Emulation mode) {
  return std::make_unique<EmulatedChannel>(std::move(inner), std::move(link), mode);
}

}  // namespace tessera::transport
