#include "service/api/catalog_routes.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <filesystem>
#include <system_error>

#include "core/fd.hpp"
#include "core/file.hpp"
#include "core/log.hpp"
#include "crypto/encoding.hpp"
#include "crypto/sha256.hpp"
#include "package/errors.hpp"
#include "package/package.hpp"
#include "package/publisher_keys.hpp"
#include "service/api/common.hpp"
#include "wire/operator_api.hpp"

namespace aspis::service::api {

namespace {

namespace fs = std::filesystem;
using http::Request;
using http::Response;
using json::Json;
using store::Role;

// Uploads in progress per tenant (and for the platform).
constexpr std::int64_t kMaxOpenUploads = 16;

// The largest package an upload may grow to: the largest payload and envelope, and the header.
constexpr std::uint64_t kMaxPackage = package::kMaxPayloadSize + (std::uint64_t{4} << 20) + 12;

wire::api::PublisherKeySet KeySetAnswer(const package::PublisherKeySet& set) {
  wire::api::PublisherKeySet shown{set.tenant,  static_cast<std::int64_t>(set.version),
                                   set.expires, set.RootFingerprint(),
                                   {},          static_cast<std::int64_t>(set.publishers.threshold),
                                   nullptr};
  for (const auto& key : set.publishers.keys) shown.publisher_keys.push_back(key.Fingerprint());
  return shown;
}

std::optional<std::uint64_t> ParseNumber(std::string_view text) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

// Reads `inner` and writes every byte it gives to `out`, hashing them, so that what is stored is
// exactly what the reader verified.
// Copies what is read from another source to a file.
class TeeSource final : public package::Source {
 public:
  TeeSource(package::Source& inner, file::FileSystem& fs, file::FileSystem::Handle out)
      : inner_(inner), fs_(fs), out_(out) {}

  Expected<std::size_t> Read(std::span<std::uint8_t> buffer) override {
    auto n = inner_.Read(buffer);
    if (!n || *n == 0) return n;
    if (auto ok = fs_.Write(out_, ByteView(buffer.data(), *n)); !ok) {
      return std::unexpected(ok.error());
    }
    return n;
  }

 private:
  package::Source& inner_;
  file::FileSystem& fs_;
  file::FileSystem::Handle out_;
};

class Catalog {
 public:
  explicit Catalog(const Context& c)
      : c_(c), uploads_(c.data.path / "uploads"), images_(c.data.path / "images") {}

  // --- publisher key sets ---

  Response PutKeySet(const Request& request, const Principal& who, std::string_view tenant) const {
    auto envelope = crypto::dsse::Parse(request.body);
    if (!envelope) {
      return Response::Problem(400, "Bad request",
                               "the body must be a DSSE envelope: " + envelope.error().message());
    }
    const auto now = c_.clock.Now();
    auto current = StoredKeySet(tenant);
    if (!current) return FromError(current.error());
    auto set = *current ? package::Successor(**current, *envelope, now)
                        : package::VerifyKeySet(*envelope, tenant, now);
    if (!set) return Response::Problem(422, "Publisher key set refused", set.error().message());
    const store::PublisherKeySetRecord record{
        std::string(tenant), static_cast<std::int64_t>(set->version), set->RootFingerprint(),
        request.body, UnixSeconds(now)};
    auto put = Audited(c_.store, c_.clock, who, tenant, "publisher-key-set.update",
                       "version " + std::to_string(set->version), [&] {
                         return c_.store.PutPublisherKeySet(
                             record, *current ? static_cast<std::int64_t>((*current)->version) : 0);
                       });
    if (!put) return FromError(put.error());
    return Response::Json(200, wire::api::ToJson(KeySetAnswer(*set)).dump());
  }

  Response GetKeySet(std::string_view tenant) const {
    auto stored = c_.store.GetPublisherKeySet(tenant);
    if (!stored) return FromError(stored.error());
    if (!*stored) {
      return Response::Problem(404, "Not found",
                               "the tenant has no publisher key set; upload one with aspis "
                               "publisher-key-set update");
    }
    auto envelope = crypto::dsse::Parse((*stored)->envelope);
    auto set = envelope ? package::ParseKeySet(AsString(envelope->payload))
                        : Expected<package::PublisherKeySet>(std::unexpected(envelope.error()));
    if (!set) return FromError(set.error());
    auto shown = KeySetAnswer(*set);
    shown.envelope = *json::Parse((*stored)->envelope);
    return Response::Json(200, wire::api::ToJson(shown).dump());
  }

  // --- uploads ---

  Response StartUpload(const Principal& who, std::string_view tenant) const {
    auto open = c_.store.CountUploads(tenant);
    if (!open) return FromError(open.error());
    if (*open >= kMaxOpenUploads) {
      return Response::Problem(429, "Too many uploads",
                               "complete or abandon uploads in progress first (at most " +
                                   std::to_string(kMaxOpenUploads) +
                                   "; unfinished ones are dropped after a day)");
    }
    auto id = crypto::RandomUuid();
    if (!id) return FromError(id.error());
    std::error_code ec;
    fs::create_directories(uploads_, ec);
    const Fd file(::open((uploads_ / *id).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (ec || file.get() < 0) return FromError(Error(CoreErrc::kIo, "cannot create an upload"));
    auto added = Audited(c_.store, c_.clock, who, tenant, "image.upload", *id, [&] {
      return c_.store.AddUpload({*id, std::string(tenant), 0, UnixSeconds(c_.clock.Now())});
    });
    if (!added) return FromError(added.error());
    return Response::Json(201, wire::api::ToJson(wire::api::Upload{*id, 0}).dump());
  }

  Response AddPart(const Request& request, std::string_view tenant) const {
    auto upload = c_.store.GetUpload(tenant, request.Param("upload"));
    if (!upload) return FromError(upload.error());
    const auto offset = ParseNumber(request.Header("upload-offset"));
    if (!offset) {
      return Response::Problem(400, "Bad request", "send the part's offset as Upload-Offset: N");
    }
    if (*offset != static_cast<std::uint64_t>(upload->received)) {
      return Response::Problem(409, "Conflict",
                               "the upload has " + std::to_string(upload->received) +
                                   " bytes; send the part at that offset");
    }
    if (request.body.empty() || request.body.size() > kMaxPart) {
      return Response::Problem(400, "Bad request", "a part holds 1 byte to 1 MiB");
    }
    if (*offset + request.body.size() > kMaxPackage) {
      return Response::Problem(413, "Too large", "an image package is at most 8 GiB");
    }
    const Fd file(::open((uploads_ / upload->id).c_str(), O_WRONLY | O_CLOEXEC));
    if (file.get() < 0) return FromError(Error(CoreErrc::kIo, "the upload's file is gone"));
    const auto written =
        ::pwrite(file.get(), request.body.data(), request.body.size(), static_cast<off_t>(*offset));
    if (written != static_cast<ssize_t>(request.body.size()) || ::fdatasync(file.get()) != 0) {
      return FromError(Error(CoreErrc::kIo, "writing an upload part failed"));
    }
    const auto to = static_cast<std::int64_t>(*offset + request.body.size());
    if (auto moved = c_.store.AdvanceUpload(upload->id, upload->received, to); !moved) {
      return FromError(moved.error());
    }
    return Response::Json(200, wire::api::ToJson(wire::api::Upload{upload->id, to}).dump());
  }

  Response Complete(const Request& request, const Principal& who, std::string_view tenant) const {
    // Claimed first: a second completion, or a part sent from now on, finds no upload.
    auto upload = c_.store.ClaimUpload(tenant, request.Param("upload"));
    if (!upload) return FromError(upload.error());
    const fs::path file = uploads_ / upload->id;
    auto stored = Keep(file, *upload, tenant);
    std::error_code ec;
    fs::remove(file, ec);
    if (!stored) {
      const bool refused = stored.error().code().category() == package::PackageCategory() &&
                           stored.error() != package::PackageErrc::kIo;
      if (!refused) return FromError(stored.error());
      return Response::Problem(422, "Image refused", stored.error().message());
    }
    store::Image& image = *stored;
    image.tenant_id = std::string(tenant);
    image.uploaded_at = UnixSeconds(c_.clock.Now());
    auto added = Audited(c_.store, c_.clock, who, tenant, "image.add", image.id,
                         [&] { return c_.store.AddImage(image); });
    if (!added) return FromError(added.error());
    return Response::Json(201, ImageJson(image).dump());
  }

  // --- images ---

  Response List(std::string_view tenant) const {
    auto images = c_.store.ListImages(tenant);
    if (!images) return FromError(images.error());
    Json list = Json::array();
    for (const auto& i : *images) list.push_back(ImageJson(i));
    return Response::Json(200, list.dump());
  }

  Response Show(const Request& request, std::string_view tenant) const {
    auto image = c_.store.GetImage(tenant, request.Param("image"));
    return image ? Response::Json(200, ImageJson(*image).dump()) : FromError(image.error());
  }

  Response Content(const Request& request, std::string_view tenant) const {
    auto image = c_.store.GetImage(tenant, request.Param("image"));
    if (!image) return FromError(image.error());
    return ServeImage(c_.data, *image, request);
  }

  const Context& context() const { return c_; }

 private:
  // Verifies the package in the upload's file for `tenant` (empty: the platform) and stores the
  // bytes it verified, as they were read, in images/<SHA-256>.aspkg: a part written to the upload
  // meanwhile changes nothing stored. Errors in the package category are refusals.
  Expected<store::Image> Keep(const fs::path& file, const store::Upload& upload,
                              std::string_view tenant) const {
    // The platform's uploads are checked against its OS publishers, a tenant's against its own.
    package::KeyRole apps;
    if (!tenant.empty()) {
      auto role = AppPublishers(tenant);
      if (!role) return std::unexpected(role.error());
      apps = std::move(*role);
    }
    const crypto::dsse::TrustedKeys app_keys = apps.Trusted();
    const package::Publishers publishers{.os = tenant.empty() ? &c_.os_publishers : nullptr,
                                         .apps = tenant.empty() ? nullptr : &app_keys,
                                         .apps_threshold = apps.threshold};
    auto source = package::FileSource::Open(file);
    if (!source) return std::unexpected(source.error());
    std::error_code ec;
    fs::create_directories(images_, ec);
    file::FileSystem& fs = file::RealFileSystem();
    auto copy = fs.CreateTemporary(images_, "upload", 0644);
    if (!copy) return std::unexpected(copy.error());
    TeeSource tee(*source, fs, copy->handle);
    auto hashed = package::HashingSource::Wrap(tee);
    if (!hashed) {
      [[maybe_unused]] auto closed = fs.Close(copy->handle);  // the failure to report is hashed's
      fs.Remove(copy->path);
      return std::unexpected(hashed.error());
    }
    auto image = VerifyFrom(*hashed, publishers, tenant);
    Expected<void> kept = image ? fs.Sync(copy->handle) : Expected<void>{};
    auto closed = fs.Close(copy->handle);
    auto digest = hashed->Finish();
    auto fail = [&](Error e) -> Expected<store::Image> {
      fs.Remove(copy->path);
      return std::unexpected(std::move(e));
    };
    if (!image) return fail(image.error());
    if (!kept || !closed || !digest) {
      return fail(!kept ? kept.error() : !closed ? closed.error() : digest.error());
    }
    if (hashed->count() != static_cast<std::uint64_t>(upload.received)) {
      return fail(Error(package::PackageErrc::kMismatch,
                        "the package is " + std::to_string(hashed->count()) +
                            " bytes, the upload " + std::to_string(upload.received)));
    }
    image->sha256 = crypto::ToHex(*digest);
    image->size = static_cast<std::int64_t>(hashed->count());
    if (auto renamed = fs.Rename(copy->path, images_ / (image->sha256 + ".aspkg")); !renamed) {
      return fail(renamed.error());
    }
    if (auto synced = fs.SyncDirectory(images_); !synced) return std::unexpected(synced.error());
    return image;
  }

  // The tenant's stored publisher key set, parsed; nullopt when it has none.
  Expected<std::optional<package::PublisherKeySet>> StoredKeySet(std::string_view tenant) const {
    auto stored = c_.store.GetPublisherKeySet(tenant);
    if (!stored) return std::unexpected(stored.error());
    if (!*stored) return std::nullopt;
    auto envelope = crypto::dsse::Parse((*stored)->envelope);
    if (!envelope) return std::unexpected(envelope.error());
    auto set = package::ParseKeySet(AsString(envelope->payload));
    if (!set) return std::unexpected(set.error());
    return std::move(*set);
  }

  // The keys a tenant's app upload must be signed with, or a refusal when the tenant has no
  // usable key set.
  Expected<package::KeyRole> AppPublishers(std::string_view tenant) const {
    auto set = StoredKeySet(tenant);
    if (!set) return std::unexpected(set.error());
    if (!*set) {
      return Fail(package::PackageErrc::kUntrusted,
                  "the tenant has no publisher key set, so no app package can be verified: "
                  "upload one with aspis publisher-key-set update");
    }
    if ((*set)->expires <= UnixSeconds(c_.clock.Now())) {
      return Fail(package::PackageErrc::kUntrusted,
                  "the tenant's publisher key set (version " + std::to_string((*set)->version) +
                      ") has expired: upload its successor with aspis publisher-key-set update");
    }
    return std::move((*set)->publishers);
  }

  static Expected<store::Image> VerifyFrom(package::Source& source,
                                           const package::Publishers& publishers,
                                           std::string_view tenant) {
    auto inspected = package::Reader::Open(source, publishers);
    if (!inspected) return std::unexpected(inspected.error());
    const package::Manifest& m = inspected->manifest();
    if (tenant.empty() == package::IsApp(m.kind)) {
      return Fail(package::PackageErrc::kUntrusted,
                  tenant.empty() ? "the platform administrator adds OS and board images; apps are "
                                   "added by their tenant"
                                 : "a tenant adds app images; OS and board images are the "
                                   "platform's");
    }
    if (auto ok = inspected->VerifyPayload(); !ok) return std::unexpected(ok.error());
    store::Image image;
    image.id = m.image_id;
    image.component_id = m.component_id;
    image.name = m.name;
    image.kind = std::string(package::KindName(m.kind));
    image.version = m.version;
    image.security_version = static_cast<std::int64_t>(m.security_version);
    image.manifest = AsString(inspected->envelope().payload);
    return image;
  }

  Context c_;
  fs::path uploads_;
  fs::path images_;
};

}  // namespace

Json ImageJson(const store::Image& i) {
  wire::api::Image shown{
      i.id,     i.component_id, i.name,        i.kind, i.version, i.security_version,
      i.sha256, i.size,         i.uploaded_at, {}};
  if (auto manifest = package::ParseManifest(i.manifest))
    shown.target_boards = manifest->target_boards;
  return wire::api::ToJson(shown);
}

Response ServeImage(const DataDir& data, const store::Image& image, const http::Request& request,
                    std::uint64_t max_range) {
  return ServeFile(data.path / "images" / (image.sha256 + ".aspkg"),
                   static_cast<std::uint64_t>(image.size), package::kMediaType, request, max_range);
}

Response ServeFile(const fs::path& path, std::uint64_t size, std::string_view media_type,
                   const http::Request& request, std::uint64_t max_range) {
  std::uint64_t first = 0;
  std::uint64_t last = size == 0 ? 0 : size - 1;
  const std::string_view range = request.Header("range");
  if (!range.empty()) {
    const auto dash = range.find('-');
    const auto a = range.starts_with("bytes=") && dash != std::string_view::npos
                       ? ParseNumber(range.substr(6, dash - 6))
                       : std::nullopt;
    const auto b = dash != std::string_view::npos && dash + 1 < range.size()
                       ? ParseNumber(range.substr(dash + 1))
                       : std::optional<std::uint64_t>(last);
    if (!a || !b || *a > *b || *a >= size) {
      Response refused = Response::Problem(416, "Range not satisfiable",
                                           "ask for one range, bytes=FIRST-LAST, within the "
                                           "file's " +
                                               std::to_string(size) + " bytes");
      refused.headers.emplace_back("Content-Range", "bytes */" + std::to_string(size));
      return refused;
    }
    first = *a;
    last = std::min({*b, size - 1, first + max_range - 1});
  } else if (size > max_range) {
    return Response::Problem(400, "Bad request",
                             "the file is " + std::to_string(size) +
                                 " bytes; fetch it in ranges of at most " +
                                 std::to_string(max_range) + " bytes (Range: bytes=FIRST-LAST)");
  }
  const Fd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (file.get() < 0) return FromError(Error(CoreErrc::kIo, path.string() + " is missing"));
  std::string bytes(size == 0 ? 0 : last - first + 1, '\0');
  const auto n = ::pread(file.get(), bytes.data(), bytes.size(), static_cast<off_t>(first));
  if (n != static_cast<ssize_t>(bytes.size())) {
    return FromError(Error(CoreErrc::kIo, "reading the image's file failed"));
  }
  Response response =
      Response::Text(range.empty() ? 200 : 206, std::move(bytes), std::string(media_type));
  if (!range.empty()) {
    response.headers.emplace_back(
        "Content-Range",
        "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" + std::to_string(size));
  }
  response.headers.emplace_back("Accept-Ranges", "bytes");
  return response;
}

void AddCatalogRoutes(http::Router& router, const Context& context) {
  auto catalog = std::make_shared<Catalog>(context);
  store::Store& store = context.store;
  router.Add("PUT", "/v1/tenants/{tenant}/publisher-key-set",
             ForTenant(store, Role::kAdministrator,
                       [catalog](const Request& r, const Principal& who, std::string_view t) {
                         return catalog->PutKeySet(r, who, t);
                       }));
  router.Add("GET", "/v1/tenants/{tenant}/publisher-key-set",
             ForTenant(store, Role::kReader,
                       [catalog](const Request&, const Principal&, std::string_view t) {
                         return catalog->GetKeySet(t);
                       }));

  // Tenant routes carry {tenant}; the platform's are the same without it, for its administrator.
  auto platform = [&store](TenantHandler handler) {
    return Authed(store, [handler = std::move(handler)](const Request& r, const Principal& who) {
      if (!who.platform()) {
        return Response::Problem(403, "Forbidden",
                                 "OS and board images are the platform administrator's; a tenant "
                                 "uses /v1/tenants/{tenant}/...");
      }
      return handler(r, who, "");
    });
  };
  struct Route {
    const char* method;
    const char* path;
    Role role;
    TenantHandler handler;
  };
  const std::vector<Route> routes = {
      {"POST", "/image-uploads", Role::kContributor,
       [catalog](const Request&, const Principal& who, std::string_view t) {
         return catalog->StartUpload(who, t);
       }},
      {"POST", "/image-uploads/{upload}/parts", Role::kContributor,
       [catalog](const Request& r, const Principal&, std::string_view t) {
         return catalog->AddPart(r, t);
       }},
      {"POST", "/image-uploads/{upload}/complete", Role::kContributor,
       [catalog](const Request& r, const Principal& who, std::string_view t) {
         return catalog->Complete(r, who, t);
       }},
      {"GET", "/images", Role::kReader,
       [catalog](const Request&, const Principal&, std::string_view t) {
         return catalog->List(t);
       }},
      {"GET", "/images/{image}", Role::kReader,
       [catalog](const Request& r, const Principal&, std::string_view t) {
         return catalog->Show(r, t);
       }},
      {"GET", "/images/{image}/content", Role::kReader,
       [catalog](const Request& r, const Principal&, std::string_view t) {
         return catalog->Content(r, t);
       }},
  };
  for (const auto& route : routes) {
    router.Add(route.method, std::string("/v1/tenants/{tenant}") + route.path,
               ForTenant(store, route.role, route.handler));
    router.Add(route.method, std::string("/v1") + route.path, platform(route.handler));
  }
}

}  // namespace aspis::service::api
