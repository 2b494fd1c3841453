#pragma once
// The web page's files, bundled from web/ at build time and embedded in the
// binary (cmake/EmbedWeb.cmake): the binary stays one file, with no Node at
// run time.
#include <string_view>
#include <vector>

namespace s3up::api {

struct WebAsset {
  std::string_view path;  // "index.html", "assets/app-<hash>.js"
  std::string_view content_type;
  std::string_view bytes;
};
const std::vector<WebAsset>& web_assets();

}  // namespace s3up::api
