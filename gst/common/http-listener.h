// The standalone HTTP listener of a server element (whipserversrc /
// whepserversink with port != 0): a SoupServer on its own thread and
// GMainContext that turns each request on `path` (e.g. "/whip") and
// `path/<session>` into a "handle-request" call on the element, and the
// element's response back into HTTP (Location, ETag, CORS, protocol-version).
#pragma once

#include <gst/gst.h>
#include <libsoup/soup.h>

#include <memory>
#include <string>

namespace whipwhep {

// Headers every WHIP/WHEP response carries, for the listener and the server.
extern const char *const kProtocolVersion;
extern const char *const kExposeHeaders;
extern const char *const kAllowHeaders;
extern const char *const kAllowMethods;

class HttpListener {
 public:
  struct Options {
    std::string address = "127.0.0.1";
    guint port = 0;            // 0: pick a free port (see port())
    std::string path = "/whip";
    gsize max_body = 256 * 1024;  // larger bodies get 413 before being read
  };

  // Starts the listener thread; nullptr and *error on failure (e.g. the port
  // is in use). `element` must outlive the listener (the element owns it).
  static std::unique_ptr<HttpListener> start(GstElement *element, const Options &opts,
                                             std::string *error);
  ~HttpListener();  // stops accepting, ends the thread

  guint port() const;
  HttpListener(const HttpListener &) = delete;
  HttpListener &operator=(const HttpListener &) = delete;

 private:
  HttpListener() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Makes `server` answer every request with "Connection: close". libsoup
// 3.2 (Debian 12 ships 3.2.3) never closes an idle keep-alive connection
// that its client closed: each one stays in CLOSE_WAIT holding an fd until
// the process runs out (fixed upstream in 3.3.0, libsoup commit d20c6601).
// WHIP/WHEP clients open a connection per request anyway.
void close_connections_after_response(SoupServer *server);

// libsoup 3.2 leaks one reference to the GSocket of every connection it
// accepts (SoupListener's listen_watch() passes g_socket_accept()'s result to
// soup_server_connection_new(), which takes its own, and never unrefs it):
// 336 bytes and the socket object per HTTP connection, for the life of the
// process (ASan: 201 leaked GSockets after 201 requests). With libsoup 3.2.x
// at run time, this drops that reference once per connection, when the
// connection's first request starts (libsoup emits request-started from
// soup_server_connection_accepted(), before anything else refs the socket),
// and only if the socket then holds more than the connection's own reference.
void release_leaked_accept_refs(SoupServer *server);

}  // namespace whipwhep
