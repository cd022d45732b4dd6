// The image catalog's verbs: the tenant's publisher key set (made offline, uploaded) and images
// (added in parts, listed, shown, downloaded in ranges).
#include <fcntl.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <filesystem>
#include <system_error>

#include "cli/command.hpp"
#include "cli/session.hpp"
#include "core/fd.hpp"
#include "core/file.hpp"
#include "crypto/dsse.hpp"
#include "package/package.hpp"
#include "package/publisher_keys.hpp"

namespace aspis::cli {

namespace {

namespace fs = std::filesystem;
using json::Json;

constexpr std::size_t kPart = std::size_t{1} << 20;   // the service's largest part
constexpr std::size_t kRange = std::size_t{4} << 20;  // and range

Expected<std::string> ReadText(const std::string& path) {
  auto bytes = file::Read(path, file::kSmallFileLimit);
  if (!bytes) return std::unexpected(std::move(bytes.error()).WithContext(path));
  return std::string(AsString(*bytes));
}

// A public key from a PEM file holding a public or a private key.
Expected<crypto::PublicKey> PublicKeyOf(const std::string& path) {
  auto pem = ReadText(path);
  if (!pem) return std::unexpected(pem.error());
  if (auto key = crypto::PublicKey::FromPem(*pem)) return key;
  auto key = crypto::PrivateKey::FromPem(*pem);
  if (!key) return Fail(CoreErrc::kInvalidArgument, path + " holds no PEM key");
  return key->Public();
}

class KeySetCreate final : public Command {
 public:
  void AddOptions(CLI::App* verb) override {
    verb->add_option("--tenant", tenant_, "The tenant the set is for")->required();
    verb->add_option("--root-key", roots_, "A root public (or private) key file (repeated)")
        ->required();
    verb->add_option("--root-threshold", root_threshold_)->capture_default_str();
    verb->add_option("--publisher-key", publishers_,
                     "A publisher public key file, FILE.pub of aspis key generate (repeated)")
        ->required();
    verb->add_option("--publisher-threshold", publisher_threshold_)->capture_default_str();
    verb->add_option("--sign-with", signers_,
                     "A root private key that signs (repeated): the new root's, and for a root "
                     "rotation the current root's too")
        ->required();
    verb->add_option("--set-version", version_, "Higher than the current set's")->required();
    verb->add_option("--expires-days", expires_days_)->capture_default_str();
    verb->add_option("--destination", destination_, "The signed set (JSON) to write")->required();
  }
  Expected<Json> Run() override {
    package::PublisherKeySet set;
    set.tenant = tenant_;
    set.version = version_;
    set.expires =
        UnixSeconds(std::chrono::system_clock::now() + std::chrono::hours(24) * expires_days_);
    set.root.threshold = root_threshold_;
    set.publishers.threshold = publisher_threshold_;
    for (const auto& path : roots_) {
      auto key = PublicKeyOf(path);
      if (!key) return std::unexpected(key.error());
      set.root.keys.push_back(*key);
    }
    for (const auto& path : publishers_) {
      auto key = PublicKeyOf(path);
      if (!key) return std::unexpected(key.error());
      set.publishers.keys.push_back(*key);
    }
    std::vector<crypto::PrivateKey> signers;
    for (const auto& path : signers_) {
      auto pem = ReadText(path);
      auto key = pem ? crypto::PrivateKey::FromPem(*pem)
                     : Expected<crypto::PrivateKey>(std::unexpected(pem.error()));
      if (!key) return std::unexpected(std::move(key.error()).WithContext(path));
      signers.push_back(std::move(*key));
    }
    auto envelope = package::SignKeySet(set, signers);
    if (!envelope) return std::unexpected(envelope.error());
    if (auto ok =
            file::WriteDurably(destination_, AsBytes(crypto::dsse::Serialize(*envelope)), 0644);
        !ok) {
      return std::unexpected(ok.error());
    }
    return Json{{"tenant", set.tenant},
                {"version", set.version},
                {"root_fingerprint", set.RootFingerprint()},
                {"file", destination_}};
  }
  Output Format() const override {
    return {.columns = {"tenant", "version", "root_fingerprint", "file"}};
  }

 private:
  std::string tenant_, destination_;
  std::vector<std::string> roots_, publishers_, signers_;
  std::size_t root_threshold_ = 1, publisher_threshold_ = 1;
  std::uint64_t version_ = 1;
  int expires_days_ = 365;
};

const std::vector<std::string> kKeySetColumns = {"tenant", "version", "root_fingerprint", "expires",
                                                 "publisher_threshold"};

class KeySetUpdate final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override {
    tenant_.AddTo(verb);
    verb->add_option("--file", file_, "The signed set (publisher-key-set create)")->required();
  }
  Output Format() const override { return {.columns = kKeySetColumns}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    auto text = ReadText(file_);
    if (!text) return std::unexpected(text.error());
    auto connection = Connect(s);
    if (!connection) return std::unexpected(connection.error());
    auto response =
        Send(*connection, s, "PUT", "/v1/tenants/" + tenant_.Of(s) + "/publisher-key-set", *text,
             {{"Content-Type", "application/json"}});
    if (!response) return std::unexpected(response.error());
    return Typed(Decode(*response), wire::api::PublisherKeySetFrom);
  }

 private:
  std::string file_;
  TenantOption tenant_;
};

class KeySetShow final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override { tenant_.AddTo(verb); }
  Output Format() const override { return {.columns = kKeySetColumns}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    return Typed(Request(s, "GET", "/v1/tenants/" + tenant_.Of(s) + "/publisher-key-set"),
                 wire::api::PublisherKeySetFrom);
  }

 private:
  TenantOption tenant_;
};

// Images live under the tenant's routes, or the platform's for a platform administrator's login
// without a tenant (OS and board images).
std::string ImagesBase(const Session& s, const TenantOption& tenant) {
  const std::string t = tenant.Of(s);
  return t.empty() ? "/v1" : "/v1/tenants/" + t;
}

const std::vector<std::string> kImageColumns = {
    "id", "name", "kind", "version", "security_version", "uploaded_at"};

class ImageAdd final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override {
    tenant_.AddTo(verb);
    verb->add_option("--image", path_, "The .aspkg file")->required();
  }
  Output Format() const override { return {.columns = kImageColumns}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    const Fd file(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    if (file.get() < 0) return Fail(CoreErrc::kIo, "cannot open " + path_);
    auto connection = Connect(s);
    if (!connection) return std::unexpected(connection.error());
    const std::string uploads = ImagesBase(s, tenant_) + "/image-uploads";
    auto started = Typed(Call(*connection, s, "POST", uploads, "", {}), wire::api::UploadFrom);
    if (!started) return started;
    const std::string upload = uploads + "/" + started->at("id").get<std::string>();
    std::string part(kPart, '\0');
    for (std::uint64_t offset = 0;;) {
      const ssize_t n = ::pread(file.get(), part.data(), part.size(), static_cast<off_t>(offset));
      if (n < 0) return Fail(CoreErrc::kIo, "reading " + path_);
      if (n == 0) break;
      auto sent = Call(*connection, s, "POST", upload + "/parts",
                       std::string_view(part.data(), static_cast<std::size_t>(n)),
                       {{"Upload-Offset", std::to_string(offset)},
                        {"Content-Type", "application/octet-stream"}});
      if (!sent) return sent;
      offset += static_cast<std::uint64_t>(n);
    }
    return Typed(Call(*connection, s, "POST", upload + "/complete", "", {}), wire::api::ImageFrom);
  }

 private:
  static Expected<Json> Call(wire::HttpsConnection& connection, const Session& s,
                             const std::string& method, const std::string& target,
                             std::string_view body,
                             std::vector<std::pair<std::string, std::string>> headers) {
    auto response = Send(connection, s, method, target, body, std::move(headers));
    if (!response) return std::unexpected(response.error());
    return Decode(*response);
  }

  std::string path_;
  TenantOption tenant_;
};

class ImageList final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override { tenant_.AddTo(verb); }
  Output Format() const override { return {.columns = kImageColumns}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    return Typed(Request(s, "GET", ImagesBase(s, tenant_) + "/images"), wire::api::ImageFrom);
  }

 private:
  TenantOption tenant_;
};

class ImageShow final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override {
    tenant_.AddTo(verb);
    verb->add_option("--image", image_, "Image ID")->required();
  }
  Output Format() const override {
    return {.columns = {"id", "component_id", "name", "kind", "version", "security_version",
                        "sha256", "size"}};
  }

 protected:
  Expected<Json> Call(const Session& s) override {
    return Typed(Request(s, "GET", ImagesBase(s, tenant_) + "/images/" + image_),
                 wire::api::ImageFrom);
  }

 private:
  std::string image_;
  TenantOption tenant_;
};

class ImageDownload final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override {
    tenant_.AddTo(verb);
    verb->add_option("--image", image_, "Image ID")->required();
    verb->add_option("--destination", destination_, "The .aspkg file to write")->required();
  }

 protected:
  Expected<Json> Call(const Session& s) override {
    auto answer = Request(s, "GET", ImagesBase(s, tenant_) + "/images/" + image_);
    auto shown = answer ? wire::api::ImageFrom(*answer)
                        : Expected<wire::api::Image>(std::unexpected(answer.error()));
    if (!shown) return std::unexpected(shown.error());
    const auto size = static_cast<std::uint64_t>(std::max<std::int64_t>(shown->size, 0));
    auto connection = Connect(s);
    if (!connection) return std::unexpected(connection.error());
    const std::string partial = destination_ + ".part";
    const Fd out(::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (out.get() < 0) return Fail(CoreErrc::kIo, "cannot create " + partial);
    for (std::uint64_t first = 0; first < size;) {
      const std::uint64_t last = std::min(size, first + kRange) - 1;
      auto response =
          Send(*connection, s, "GET", ImagesBase(s, tenant_) + "/images/" + image_ + "/content", "",
               {{"Range", "bytes=" + std::to_string(first) + "-" + std::to_string(last)}});
      if (!response) return std::unexpected(response.error());
      if (response->status != 206 || response->body.empty() ||
          response->body.size() > last - first + 1) {
        auto problem = Decode(*response);
        return Fail(CoreErrc::kIo, problem ? "the service did not send the range asked for"
                                           : problem.error().message());
      }
      if (::pwrite(out.get(), response->body.data(), response->body.size(),
                   static_cast<off_t>(first)) != static_cast<ssize_t>(response->body.size())) {
        return Fail(CoreErrc::kIo, "writing " + partial);
      }
      first += response->body.size();
    }
    if (::fsync(out.get()) != 0) return Fail(CoreErrc::kIo, "writing " + partial);
    std::error_code ec;
    fs::rename(partial, destination_, ec);
    if (ec) return Fail(CoreErrc::kIo, "renaming " + partial + ": " + ec.message());
    return Json("wrote " + destination_ + " (" + std::to_string(size) + " bytes)\n");
  }

 private:
  std::string image_, destination_;
  TenantOption tenant_;
};

}  // namespace

void AddCatalogCommands(CLI::App& app, Registry& r) {
  auto* key_set = app.add_subcommand("publisher-key-set",
                                     "The tenant's publisher keys, signed by its offline root")
                      ->require_subcommand(1);
  r.Add<KeySetCreate>(key_set->add_subcommand(
      "create", "Make and sign a publisher key set offline, with the root's private keys"));
  r.Add<KeySetUpdate>(key_set->add_subcommand(
      "update", "Upload a signed set: the first, or the successor the current root signed"));
  r.Add<KeySetShow>(key_set->add_subcommand("show", "Show the tenant's publisher key set"));

  auto* image =
      app.add_subcommand("image", "Images: verified, immutable packages")->require_subcommand(1);
  r.Add<ImageAdd>(image->add_subcommand(
      "add", "Upload a package; the service verifies it (apps: tenant; OS and board: platform)"));
  r.Add<ImageList>(image->add_subcommand("list", "List images"));
  r.Add<ImageShow>(image->add_subcommand("show", "Show an image"));
  r.Add<ImageDownload>(image->add_subcommand("download", "Download an image's package"));
}

}  // namespace aspis::cli
