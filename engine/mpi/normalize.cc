// Normalisers for person-record fields. See docs/mpi.md section 1.
// Thread-safety: pure functions; NicknameTable is read-only after set-up.
#include "engine/mpi/normalize.h"

#include <cctype>

namespace switchboard::mpi {
namespace {

struct FoldRange {
  char32_t first;
  char32_t last;
  const char* ascii;  // "" means: becomes a space
};

// Latin-1 Supplement letters (U+00C0..U+00FF) and Latin Extended-A (U+0100..U+017F).
constexpr FoldRange kFoldRanges[] = {
    {0xC0, 0xC5, "a"},   {0xC6, 0xC6, "ae"},  {0xC7, 0xC7, "c"},   {0xC8, 0xCB, "e"},
    {0xCC, 0xCF, "i"},   {0xD0, 0xD0, "d"},   {0xD1, 0xD1, "n"},   {0xD2, 0xD6, "o"},
    {0xD7, 0xD7, ""},    {0xD8, 0xD8, "o"},   {0xD9, 0xDC, "u"},   {0xDD, 0xDD, "y"},
    {0xDE, 0xDE, "th"},  {0xDF, 0xDF, "ss"},  {0xE0, 0xE5, "a"},   {0xE6, 0xE6, "ae"},
    {0xE7, 0xE7, "c"},   {0xE8, 0xEB, "e"},   {0xEC, 0xEF, "i"},   {0xF0, 0xF0, "d"},
    {0xF1, 0xF1, "n"},   {0xF2, 0xF6, "o"},   {0xF7, 0xF7, ""},    {0xF8, 0xF8, "o"},
    {0xF9, 0xFC, "u"},   {0xFD, 0xFD, "y"},   {0xFE, 0xFE, "th"},  {0xFF, 0xFF, "y"},
    {0x100, 0x105, "a"}, {0x106, 0x10D, "c"}, {0x10E, 0x111, "d"}, {0x112, 0x11B, "e"},
    {0x11C, 0x123, "g"}, {0x124, 0x127, "h"}, {0x128, 0x131, "i"}, {0x132, 0x133, "ij"},
    {0x134, 0x135, "j"}, {0x136, 0x138, "k"}, {0x139, 0x142, "l"}, {0x143, 0x14B, "n"},
    {0x14C, 0x151, "o"}, {0x152, 0x153, "oe"}, {0x154, 0x159, "r"}, {0x15A, 0x161, "s"},
    {0x162, 0x167, "t"}, {0x168, 0x173, "u"}, {0x174, 0x175, "w"}, {0x176, 0x178, "y"},
    {0x179, 0x17E, "z"}, {0x17F, 0x17F, "s"},
};

const char* foldCodePoint(char32_t cp) {
  for (const auto& r : kFoldRanges) {
    if (cp >= r.first && cp <= r.last) return r.ascii;
  }
  return "";
}

// Decodes one UTF-8 code point at s[i]; advances i. Returns 0xFFFFFFFF for invalid bytes.
char32_t decodeUtf8(std::string_view s, size_t& i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    ++i;
    return c;
  }
  int extra = 0;
  char32_t cp = 0;
  if ((c & 0xE0) == 0xC0) {
    extra = 1;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    extra = 2;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    extra = 3;
    cp = c & 0x07;
  } else {
    ++i;
    return 0xFFFFFFFF;
  }
  if (i + extra >= s.size()) {
    i = s.size();
    return 0xFFFFFFFF;
  }
  for (int k = 1; k <= extra; ++k) {
    unsigned char cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) {
      i += k;
      return 0xFFFFFFFF;
    }
    cp = (cp << 6) | (cc & 0x3F);
  }
  i += extra + 1;
  return cp;
}

void appendSpace(std::string& out) {
  if (!out.empty() && out.back() != ' ') out.push_back(' ');
}

}  // namespace

std::string foldText(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    char32_t cp = decodeUtf8(s, i);
    if (cp == 0xFFFFFFFF) continue;
    if (cp < 0x80) {
      char c = static_cast<char>(cp);
      if (c >= 'A' && c <= 'Z') {
        out.push_back(static_cast<char>(c - 'A' + 'a'));
      } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
        out.push_back(c);
      } else if (c == '\'' || c == 0x60) {
        // Apostrophes join (o'brien -> obrien) rather than split.
      } else {
        appendSpace(out);
      }
    } else if (cp == 0x2019 || cp == 0x2018) {
      // typographic apostrophes join too
    } else {
      const char* a = foldCodePoint(cp);
      if (*a == 0) {
        appendSpace(out);
      } else {
        out += a;
      }
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (!out.empty() && out.front() == ' ') out.erase(0, 1);
  return out;
}

std::vector<std::string> splitTokens(std::string_view folded) {
  std::vector<std::string> tokens;
  size_t i = 0;
  while (i < folded.size()) {
    while (i < folded.size() && folded[i] == ' ') ++i;
    size_t j = i;
    while (j < folded.size() && folded[j] != ' ') ++j;
    if (j > i) tokens.emplace_back(folded.substr(i, j - i));
    i = j;
  }
  return tokens;
}

std::string normalizeFamilyName(std::string_view utf8) { return foldText(utf8); }

std::string normalizeGivenName(std::string_view utf8) { return foldText(utf8); }

uint32_t normalizeBirthDate(std::string_view text) {
  std::string digits;
  int groups = 0;
  bool inDigits = false;
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      if (!inDigits) ++groups;
      inDigits = true;
      digits.push_back(c);
    } else {
      inDigits = false;
      if (c == 'T') break;  // dateTime: ignore the time part
    }
  }
  if (digits.size() < 4) return 0;
  if (digits.size() == 4) return static_cast<uint32_t>(std::stoul(digits)) * 10000;
  if (digits.size() == 6) return static_cast<uint32_t>(std::stoul(digits)) * 100;
  if (digits.size() != 8) return 0;
  return static_cast<uint32_t>(std::stoul(digits));
}

uint64_t normalizePhone(std::string_view text, std::string_view defaultCallingCode) {
  std::string digits;
  bool plus = false;
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      digits.push_back(c);
    } else if (c == '+' && digits.empty()) {
      plus = true;
    } else if (c == 'x' || c == 'X' || c == ';' || c == ',') {
      break;  // extension
    }
  }
  if (!plus && digits.size() > 2 && digits[0] == '0' && digits[1] == '0') {
    digits.erase(0, 2);
    plus = true;
  }
  if (!plus) {
    bool hasCode = !defaultCallingCode.empty() && digits.size() > 10 &&
                   digits.compare(0, defaultCallingCode.size(), defaultCallingCode) == 0;
    if (!hasCode) {
      while (!digits.empty() && digits[0] == '0') digits.erase(0, 1);
      digits.insert(0, defaultCallingCode);
    }
  }
  if (digits.size() < 6 || digits.size() > 18) return 0;
  return std::stoull(digits);
}

std::string normalizeEmail(std::string_view text, bool gmailDotsOptional) {
  std::string e;
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    e.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  if (e.rfind("mailto:", 0) == 0) e.erase(0, 7);
  size_t at = e.rfind('@');
  if (at == std::string::npos || at == 0 || at + 1 == e.size()) return {};
  std::string local = e.substr(0, at);
  std::string domain = e.substr(at + 1);
  if (gmailDotsOptional && (domain == "gmail.com" || domain == "googlemail.com")) {
    size_t plus = local.find('+');
    if (plus != std::string::npos) local.erase(plus);
    std::string compact;
    for (char c : local)
      if (c != '.') compact.push_back(c);
    local = compact;
    domain = "gmail.com";
  }
  return local + "@" + domain;
}

std::string normalizePostcode(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (std::isalnum(static_cast<unsigned char>(c)))
      out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  return out;
}

std::string normalizeIdentifierValue(std::string_view text) { return normalizePostcode(text); }

NicknameTable::NicknameTable() {
  // A small built-in table of common English given-name variants; conf/mpi.json extends it.
  static const struct {
    const char* canonical;
    const char* variants;
  } kBuiltin[] = {
      {"william", "bill billy will willy liam"},
      {"robert", "bob bobby rob robbie bert"},
      {"richard", "dick rick ricky rich richie"},
      {"elizabeth", "liz lizzie beth betty eliza elisabeth libby"},
      {"margaret", "maggie meg peggy marge margie greta"},
      {"katherine", "kate katie kathy catherine kathryn cathy kat"},
      {"james", "jim jimmy jamie"},
      {"john", "jack johnny"},
      {"jonathan", "jon jonny"},
      {"michael", "mike mick mickey mikey"},
      {"thomas", "tom tommy"},
      {"joseph", "joe joey"},
      {"charles", "charlie chuck chas"},
      {"christopher", "chris kit topher"},
      {"christine", "chris chrissy christina kristin kristen tina"},
      {"daniel", "dan danny"},
      {"matthew", "matt matty"},
      {"anthony", "tony"},
      {"andrew", "andy drew"},
      {"alexander", "alex alec sandy xander"},
      {"alexandra", "alex sandra lexi"},
      {"benjamin", "ben benny benji"},
      {"samuel", "sam sammy"},
      {"samantha", "sam sammie"},
      {"nicholas", "nick nicky nico"},
      {"edward", "ed eddie ted ned"},
      {"patrick", "pat paddy"},
      {"patricia", "pat patty trish tricia"},
      {"jennifer", "jen jenny jenn"},
      {"rebecca", "becky becca"},
      {"susan", "sue susie suzanne"},
      {"deborah", "debbie deb debra"},
      {"victoria", "vicky tori"},
      {"stephen", "steve steven stevie"},
      {"timothy", "tim timmy"},
      {"peter", "pete"},
      {"gregory", "greg"},
      {"jessica", "jess jessie"},
      {"abigail", "abby gail"},
      {"francisco", "paco pancho"},
      {"jose", "pepe"},
      {"guadalupe", "lupe lupita"},
      {"ignacio", "nacho"},
      {"manuel", "manolo manny"},
  };
  for (const auto& e : kBuiltin) {
    std::string c = e.canonical;
    map_.emplace(c, c);
    for (const auto& v : splitTokens(e.variants)) map_.emplace(v, c);
  }
}

void NicknameTable::add(std::string_view canonical, const std::vector<std::string>& variants) {
  std::string c = foldText(canonical);
  if (c.empty()) return;
  map_[c] = c;
  for (const auto& v : variants) {
    std::string f = foldText(v);
    if (!f.empty()) map_[f] = c;
  }
}

std::string_view NicknameTable::canonical(std::string_view token) const {
  auto it = map_.find(std::string(token));
  if (it == map_.end()) return token;
  return it->second;
}

}  // namespace switchboard::mpi
