#include "cli/command.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <ctime>

#include "core/text.hpp"

namespace aspis::cli {

using json::Json;

namespace {

std::string Cell(const Json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_null()) return "";
  return value.dump();
}

// The cells of `columns` (dotted paths reach nested fields) for a list of objects.
std::vector<std::vector<std::string>> Cells(const Json& rows,
                                            const std::vector<std::string>& columns) {
  const Json list = rows.is_array() ? rows : Json::array({rows});
  std::vector<std::vector<std::string>> cells;
  for (const auto& row : list) {
    std::vector<std::string> line;
    for (std::size_t i = 0; i < columns.size(); ++i) {
      const Json* value = &row;
      std::string path = columns[i];
      for (std::size_t dot; (dot = path.find('.')) != std::string::npos;
           path = path.substr(dot + 1)) {
        value = value->contains(path.substr(0, dot)) ? &(*value)[path.substr(0, dot)] : nullptr;
        if (value == nullptr) break;
      }
      std::string text = value != nullptr && value->contains(path) ? Cell((*value)[path]) : "";
      // Times are Unix seconds in JSON; people read them as UTC.
      const bool is_time = path == "at" || path.ends_with("_at") || path.ends_with("expiry") ||
                           path.ends_with("_time") || path == "not_after" || path == "not_before";
      if (is_time && value != nullptr && (*value)[path].is_number_integer()) {
        text = UtcTime((*value)[path]);
      }
      line.push_back(text);
    }
    cells.push_back(std::move(line));
  }
  return cells;
}

// Prints a list of objects as an aligned table of `columns`.
void PrintTable(std::ostream& out, const Json& rows, const std::vector<std::string>& columns) {
  const auto cells = Cells(rows, columns);
  std::vector<std::size_t> widths(columns.size());
  std::transform(columns.begin(), columns.end(), widths.begin(),
                 [](const std::string& c) { return c.size(); });
  for (const auto& line : cells) {
    for (std::size_t i = 0; i < line.size(); ++i) widths[i] = std::max(widths[i], line[i].size());
  }
  auto print = [&](const std::vector<std::string>& line) {
    for (std::size_t i = 0; i < line.size(); ++i) {
      out << line[i];
      if (i + 1 < line.size()) out << std::string(widths[i] - line[i].size() + 2, ' ');
    }
    out << "\n";
  };
  print(columns);
  for (const auto& line : cells) print(line);
}

// RFC 4180 CSV of `columns`. A cell that a spreadsheet would read as a formula (devices and
// apps write descriptions) is prefixed with an apostrophe, so it stays text.
void PrintCsv(std::ostream& out, const Json& rows, const std::vector<std::string>& columns) {
  const auto quoted = [](std::string cell) {
    if (!cell.empty() && std::string_view("=+-@\t\r").find(cell.front()) != std::string::npos) {
      cell.insert(cell.begin(), '\'');
    }
    if (cell.find_first_of(",\"\r\n") == std::string::npos) return cell;
    std::string text = "\"";
    for (const char c : cell) text += c == '"' ? std::string("\"\"") : std::string(1, c);
    return text + "\"";
  };
  auto print = [&](const std::vector<std::string>& line) {
    for (std::size_t i = 0; i < line.size(); ++i) out << (i == 0 ? "" : ",") << quoted(line[i]);
    out << "\r\n";
  };
  print(columns);
  for (const auto& line : Cells(rows, columns)) print(line);
}

// `value` with every string (and key) made printable (text::Printable).
Json Printable(const Json& value) {
  if (value.is_string()) return text::Printable(value.get<std::string>());
  if (value.is_array()) {
    Json out = Json::array();
    for (const auto& item : value) out.push_back(Printable(item));
    return out;
  }
  if (value.is_object()) {
    Json out = Json::object();
    for (const auto& [key, item] : value.items()) out[text::Printable(key)] = Printable(item);
    return out;
  }
  return value;
}

}  // namespace

std::string UtcTime(const Json& seconds) {
  const std::int64_t at = seconds.is_number() ? seconds.get<std::int64_t>() : 0;
  if (at == 0) return "-";
  const std::time_t t = at;
  std::tm tm{};
  char text[32];
  if (gmtime_r(&t, &tm) == nullptr ||
      std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0) {
    return std::to_string(at);
  }
  return text;
}

void Output::Print(std::ostream& out, std::string_view format, const Json& value) const {
  if (format == "json" || (!table && columns.empty())) {
    // A string is the command's own message; JSON is escaped to ASCII, so it prints as it is.
    out << (value.is_string() ? value.get<std::string>()
                              : value.dump(2, ' ', true, Json::error_handler_t::replace) + "\n");
    return;
  }
  // Tenants, operators and devices wrote these strings: none may drive the terminal.
  const Json shown = Printable(value);
  if (format == "csv") {
    if (columns.empty()) {
      out << value.dump(2, ' ', true, Json::error_handler_t::replace) << "\n";
    } else {
      PrintCsv(out, shown, columns);
    }
    return;
  }
  if (table) {
    table(out, shown);
  } else {
    PrintTable(out, shown, columns);
  }
}

void Registry::Bind(CLI::App* verb, std::unique_ptr<Command> command) {
  Command* bound = command.get();
  commands_.push_back(std::move(command));
  verb->callback([this, bound] { chosen_ = bound; });
}

}  // namespace aspis::cli
