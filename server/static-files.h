// The built-in web pages (dashboard, publish, watch): files from one flat
// directory installed with the server, plus the non-secret /config.json the
// dashboard reads to pre-fill the account id.
//
// Routes (GET and HEAD only):
//   /                    -> index.html
//   /{uid}/watch         -> watch.html   (stable, embeddable player URL)
//   /{uid}/publish       -> publish.html
//   /config.json         -> {"accountId": …, "apiBase": …}
//   /{name}              -> that file, if `name` is a plain file name
// Nothing else is served: no sub-directories, no dot-files, no '..', no
// percent-escapes, so a request can never leave the directory.
#pragma once

#include <libsoup/soup.h>

#include <string>

namespace server {

// The directory pages are served from: $WHIPWHEP_WEB_ROOT, else the
// installed datadir/whipwhep/web, else the source tree's server/web (so a
// binary run from the build directory works). Empty when none holds an
// index.html.
std::string web_root();

// True when `path` is one of the routes above and a reply was set (200, 304,
// 404 for a missing page file, 405 for other methods). False: not ours, the
// caller routes on.
bool serve_static(SoupServerMessage *msg, const char *path, const std::string &account_id);

}  // namespace server
