// Embedding example: an application that owns its HTTP server and its
// pipeline, and drives whipserversrc / whepserversink through their
// `handle-request` action signal (gst/common/README.md) instead of letting
// them open listeners of their own. This is how whipwhep-server works too.
//
//   embedded-relay [--port N] [--ice-addresses 127.0.0.1] [--seconds S]
//
// WHIP endpoint: http://127.0.0.1:N/whip   WHEP endpoint: http://127.0.0.1:N/whep
// Prints "ready <port>" once it accepts requests.
#include <gio/gio.h>
#include <glib-unix.h>
#include <gst/gst.h>
#include <libsoup/soup.h>

#include <cstdio>
#include <string>

#include "gobj.h"
#include "http-listener.h"
#include "http-types.h"

namespace {

struct App {
  gobj::Ref<GstElement> pipeline;
  gobj::Ref<GstElement> src;   // whipserversrc
  gobj::Ref<GstElement> sink;  // whepserversink
  GMainLoop *loop = nullptr;
};

// Feed every pad whipserversrc exposes into the sink pad of the same name:
// the relay is payloaded once inside whepserversink and fanned out.
void on_pad_added(GstElement *, GstPad *pad, gpointer data) {
  auto *app = static_cast<App *>(data);
  if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC) return;
  gobj::Ref<GstPad> sinkpad =
      gobj::adopt(gst_element_request_pad_simple(app->sink.get(), GST_PAD_NAME(pad)));
  if (!sinkpad || gst_pad_link(pad, sinkpad.get()) != GST_PAD_LINK_OK)
    g_printerr("cannot relay %s\n", GST_PAD_NAME(pad));
}

void handle(SoupServer *, SoupServerMessage *msg, const char *path, GHashTable *, gpointer data) {
  auto *app = static_cast<App *>(data);
  std::string p = path;
  GstElement *target = nullptr;
  std::string prefix;
  if (p.rfind("/whip", 0) == 0) target = app->src.get(), prefix = "/whip";
  if (p.rfind("/whep", 0) == 0) target = app->sink.get(), prefix = "/whep";
  if (!target) {
    soup_server_message_set_status(msg, 404, nullptr);
    return;
  }
  whipwhep::HttpRequest req;
  req.method = soup_server_message_get_method(msg);
  if (p.size() > prefix.size() + 1) req.session = p.substr(prefix.size() + 1);
  SoupMessageHeaders *h = soup_server_message_get_request_headers(msg);
  req.content_type = whipwhep::normalize_media_type(soup_message_headers_get_one(h, "Content-Type"));
  req.authorization = gobj::str_or(soup_message_headers_get_one(h, "Authorization"));
  req.if_match = gobj::str_or(soup_message_headers_get_one(h, "If-Match"));
  SoupMessageBody *body = soup_server_message_get_request_body(msg);
  if (body && body->length > 0) req.body = gobj::adopt(soup_message_body_flatten(body));

  // A new viewer is let in only once whipserversrc is "publishing", i.e.
  // every stream of the publisher has its pad (whipwhep-server does the
  // same). Before that, whepserversink may already know the first stream's
  // codec and not yet have the second stream at all: it would answer the
  // viewer with that m-line inactive, for good (seen in the examples test: a
  // player that POSTed between the publisher's video and audio pads got no
  // audio).
  if (target == app->sink.get() && req.method == "POST" && req.session.empty()) {
    gboolean publishing = FALSE;
    g_object_get(app->src.get(), "publishing", &publishing, nullptr);
    if (!publishing) {
      static const char kNotYet[] = "no publisher yet";
      soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Retry-After",
                                   "1");
      soup_server_message_set_status(msg, 503, nullptr);
      soup_server_message_set_response(msg, "text/plain", SOUP_MEMORY_STATIC, kNotYet,
                                       sizeof kNotYet - 1);
      return;
    }
  }

  // The element answers asynchronously (after ICE gathering): pause the
  // message and finish it on this thread's context when the answer comes.
  soup_server_message_pause(msg);
  auto held = gobj::ref(msg);
  whipwhep::submit_request(target, req, nullptr, [held, prefix](whipwhep::HttpResponse r) {
    SoupMessageHeaders *rh = soup_server_message_get_response_headers(held.get());
    if (r.status == 201 && !r.session.empty())
      soup_message_headers_replace(rh, "Location", (prefix + "/" + r.session).c_str());
    if (!r.etag.empty()) soup_message_headers_replace(rh, "ETag", r.etag.c_str());
    for (const auto &kv : r.headers) soup_message_headers_append(rh, kv.first.c_str(), kv.second.c_str());
    soup_message_headers_replace(rh, "Access-Control-Expose-Headers", whipwhep::kExposeHeaders);
    soup_server_message_set_status(held.get(), r.status, nullptr);
    if (!r.body.empty())
      soup_server_message_set_response(held.get(), r.content_type.empty() ? "text/plain" : r.content_type.c_str(),
                                       SOUP_MEMORY_COPY, r.body.data(), r.body.size());
    soup_server_message_unpause(held.get());
  });
}

}  // namespace

int main(int argc, char **argv) {
  gint port = 8190;
  gint seconds = 0;
  gchar *ice = nullptr;
  GOptionEntry entries[] = {
      {"port", 0, 0, G_OPTION_ARG_INT, &port, "HTTP port on 127.0.0.1 (0 = any free port)", "N"},
      {"ice-addresses", 0, 0, G_OPTION_ARG_STRING, &ice, "Local addresses ICE may use", "A[,B]"},
      {"seconds", 0, 0, G_OPTION_ARG_INT, &seconds, "Exit after S seconds (0 = run until SIGINT)", "S"},
      {nullptr}};
  gobj::Unique<GError> err;
  GOptionContext *octx = g_option_context_new("- WHIP in, WHEP out, in one embedded pipeline");
  g_option_context_add_main_entries(octx, entries, nullptr);
  g_option_context_add_group(octx, gst_init_get_option_group());
  if (!g_option_context_parse(octx, &argc, &argv, gobj::out(err))) {
    g_printerr("%s\n", err->message);
    return 2;
  }
  g_option_context_free(octx);
  gobj::Unique<gchar> ice_holder(ice);

  App app;
  app.pipeline = gobj::sink(gst_pipeline_new("relay"));
  app.src = gobj::sink(gst_element_factory_make("whipserversrc", "src"));
  app.sink = gobj::sink(gst_element_factory_make("whepserversink", "sink"));
  if (!app.src || !app.sink) {
    g_printerr("whipwhep elements not found: set GST_PLUGIN_PATH to the plugin's folder\n");
    return 1;
  }
  for (GstElement *e : {app.src.get(), app.sink.get()})
    g_object_set(e, "ice-addresses", ice ? ice : "", nullptr);
  // app.src/app.sink hold the (sunk, no longer floating) references from
  // gobj::sink(): gst_bin_add() then takes a reference of its own, so none is
  // added here. An extra gst_object_ref() kept both elements, and every input
  // pad, payloader and fan-out of whepserversink, alive past exit.
  gst_bin_add_many(GST_BIN(app.pipeline.get()), app.src.get(), app.sink.get(), nullptr);
  g_signal_connect(app.src.get(), "pad-added", G_CALLBACK(on_pad_added), &app);
  gst_element_set_state(app.pipeline.get(), GST_STATE_PLAYING);

  gobj::Ref<SoupServer> server = gobj::adopt(soup_server_new(nullptr, nullptr));
  // libsoup 3.2 leaks each accepted connection's GSocket; this drops that
  // reference (a no-op with other libsoup versions).
  whipwhep::release_leaked_accept_refs(server.get());
  soup_server_add_handler(server.get(), nullptr, handle, &app, nullptr);
  gobj::Ref<GSocketAddress> addr =
      gobj::adopt(g_inet_socket_address_new_from_string("127.0.0.1", static_cast<guint>(port)));
  if (!soup_server_listen(server.get(), addr.get(), SoupServerListenOptions(0), gobj::out(err))) {
    g_printerr("cannot listen: %s\n", err->message);
    return 1;
  }
  GSList *uris = soup_server_get_uris(server.get());
  guint bound = uris ? g_uri_get_port(static_cast<GUri *>(uris->data)) : 0;
  g_slist_free_full(uris, reinterpret_cast<GDestroyNotify>(g_uri_unref));
  g_print("ready %u\nWHIP: http://127.0.0.1:%u/whip\nWHEP: http://127.0.0.1:%u/whep\n", bound, bound, bound);

  app.loop = g_main_loop_new(nullptr, FALSE);
  auto quit = +[](gpointer loop) -> gboolean {
    g_main_loop_quit(static_cast<GMainLoop *>(loop));
    return G_SOURCE_REMOVE;
  };
  g_unix_signal_add(SIGINT, quit, app.loop);
  g_unix_signal_add(SIGTERM, quit, app.loop);
  if (seconds > 0) g_timeout_add_seconds(static_cast<guint>(seconds), quit, app.loop);
  g_main_loop_run(app.loop);

  soup_server_disconnect(server.get());
  gst_element_set_state(app.pipeline.get(), GST_STATE_NULL);
  g_main_loop_unref(app.loop);
  return 0;
}
