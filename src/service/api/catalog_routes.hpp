#pragma once

#include "core/json.hpp"
#include "service/api/api.hpp"
#include "service/http/router.hpp"

// The image catalog's operator routes (DESIGN section 5): a tenant's publisher key set, image
// uploads in parts, verified on completion and stored by the SHA-256 of the package, and images
// read back in ranges. The service verifies every package but holds no publisher key.
//
//   PUT  /v1/tenants/{tenant}/publisher-key-set           Administrator
//   GET  /v1/tenants/{tenant}/publisher-key-set           Reader
//   POST /v1/tenants/{tenant}/image-uploads               Contributor (apps)
//   POST /v1/tenants/{tenant}/image-uploads/{upload}/parts     Upload-Offset: N, body <= 1 MiB
//   POST /v1/tenants/{tenant}/image-uploads/{upload}/complete
//   GET  /v1/tenants/{tenant}/images[/{image}[/content]]  Reader; content in ranges of <= 4 MiB
//   The same under /v1/image-uploads and /v1/images for the platform administrator (OS, board).
namespace aspis::service::api {

// Parts and ranges are at most this large.
inline constexpr std::size_t kMaxPart = std::size_t{1} << 20;
inline constexpr std::size_t kMaxRange = std::size_t{4} << 20;

void AddCatalogRoutes(http::Router& router, const Context& context);

// An image as the API shows it.
json::Json ImageJson(const store::Image& image);

// The stored package of `image`: all of it (200) when no larger than `max_range`, or the one
// range `request` asks for (206, at most `max_range` bytes; 416 for a range outside the image).
// The range is read into memory, so `max_range` bounds what one request costs.
http::Response ServeImage(const DataDir& data, const store::Image& image,
                          const http::Request& request, std::uint64_t max_range = kMaxRange);
// The same for any stored file of `size` bytes, served as `media_type`.
http::Response ServeFile(const std::filesystem::path& path, std::uint64_t size,
                         std::string_view media_type, const http::Request& request,
                         std::uint64_t max_range);

}  // namespace aspis::service::api
