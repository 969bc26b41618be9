// Decimal, Temporal and Quantity values of FHIRPath: exact decimal arithmetic, partial-precision
// dates and times, UCUM/calendar unit conversion. Thread-safety: pure functions over values.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "engine/fhirpath/internal.h"

namespace switchboard::fhirpath {

namespace {

__extension__ typedef __int128 I128;
__extension__ typedef unsigned __int128 U128;

I128 mant(const Decimal& d) {
  U128 bits = (static_cast<U128>(static_cast<std::uint64_t>(d.mantissaHigh())) << 64) |
              static_cast<U128>(d.mantissaLow());
  return static_cast<I128>(bits);
}

Decimal make(I128 m, int scale) {
  U128 bits = static_cast<U128>(m);
  return Decimal::fromParts(static_cast<std::int64_t>(static_cast<std::uint64_t>(bits >> 64)),
                            static_cast<std::uint64_t>(bits), scale);
}

I128 pow10(int n) {
  I128 r = 1;
  for (int i = 0; i < n; ++i) r *= 10;
  return r;
}

// Divides m by 10^n rounding half away from zero.
I128 divRound(I128 m, int n) {
  if (n <= 0) return m;
  I128 p = pow10(n);
  I128 q = m / p, r = m % p;
  if (r < 0) r = -r;
  if (r * 2 >= p) q += (m < 0 ? -1 : 1);
  return q;
}

const I128 kLimit = pow10(36);

Decimal reduceScale(I128 m, int scale) {
  // Keep within kMaxScale and within the 128-bit range.
  while (scale > Decimal::kMaxScale || m > kLimit || m < -kLimit) {
    if (scale == 0) break;
    m = divRound(m, 1);
    --scale;
  }
  return make(m, scale);
}

std::string twoDigits(int v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%02d", v);
  return buf;
}

}  // namespace

Decimal Decimal::fromParts(std::int64_t hi, std::uint64_t lo, int scale) {
  Decimal d;
  d.hi_ = hi;
  d.lo_ = lo;
  d.scale_ = scale;
  return d;
}

Decimal Decimal::fromInt(std::int64_t v) { return make(v, 0); }

std::optional<Decimal> Decimal::parse(std::string_view text) {
  std::size_t i = 0;
  bool neg = false;
  if (i < text.size() && (text[i] == '-' || text[i] == '+')) {
    neg = text[i] == '-';
    ++i;
  }
  I128 m = 0;
  int scale = 0, digits = 0;
  bool dot = false;
  for (; i < text.size(); ++i) {
    char c = text[i];
    if (c == '.') {
      if (dot) return std::nullopt;
      dot = true;
      continue;
    }
    if (c < '0' || c > '9') return std::nullopt;
    if (m < pow10(35)) {
      m = m * 10 + (c - '0');
      if (dot) ++scale;
    } else if (!dot) {
      return std::nullopt;  // too large
    }
    ++digits;
  }
  if (digits == 0) return std::nullopt;
  if (dot && text.back() == '.') return std::nullopt;
  return reduceScale(neg ? -m : m, scale);
}

Decimal Decimal::fromDouble(double v) {
  if (!std::isfinite(v)) return Decimal();
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  std::string s = buf;
  if (s.find_first_of("eE") != std::string::npos) {
    std::snprintf(buf, sizeof buf, "%.18f", v);
    s = buf;
  }
  auto d = parse(s);
  return d ? decNormalize(*d) : Decimal();
}

std::string Decimal::toString() const {
  I128 m = mant(*this);
  bool neg = m < 0;
  U128 u = neg ? static_cast<U128>(-m) : static_cast<U128>(m);
  std::string digits;
  do {
    digits.push_back(static_cast<char>('0' + static_cast<int>(u % 10)));
    u /= 10;
  } while (u != 0);
  while (static_cast<int>(digits.size()) <= scale_) digits.push_back('0');
  std::reverse(digits.begin(), digits.end());
  std::string out = neg ? "-" : "";
  if (scale_ > 0) {
    out += digits.substr(0, digits.size() - scale_);
    out += '.';
    out += digits.substr(digits.size() - scale_);
  } else {
    out += digits;
  }
  return out;
}

long double Decimal::toLongDouble() const {
  return static_cast<long double>(mant(*this)) / static_cast<long double>(pow10(scale_));
}
double Decimal::toDouble() const { return static_cast<double>(toLongDouble()); }

bool Decimal::isInteger() const { return mant(*this) % pow10(scale_) == 0; }

int Decimal::compare(const Decimal& other) const {
  int s = std::max(scale_, other.scale_);
  I128 a = mant(*this), b = mant(other);
  // Compare integer parts first to avoid overflow when rescaling.
  I128 ai = a / pow10(scale_), bi = b / pow10(other.scale_);
  if (ai != bi) return ai < bi ? -1 : 1;
  I128 af = (a % pow10(scale_)) * pow10(s - scale_);
  I128 bf = (b % pow10(other.scale_)) * pow10(s - other.scale_);
  if (af == bf) return 0;
  return af < bf ? -1 : 1;
}

Decimal decAdd(const Decimal& a, const Decimal& b) {
  int s = std::max(a.scale(), b.scale());
  return reduceScale(mant(a) * pow10(s - a.scale()) + mant(b) * pow10(s - b.scale()), s);
}
Decimal decNeg(const Decimal& a) { return make(-mant(a), a.scale()); }
Decimal decSub(const Decimal& a, const Decimal& b) { return decAdd(a, decNeg(b)); }

std::optional<Decimal> decMul(const Decimal& a, const Decimal& b) {
  Decimal x = decNormalize(a), y = decNormalize(b);
  I128 ma = mant(x), mb = mant(y);
  int scale = x.scale() + y.scale();
  // Reduce operands until the product fits.
  auto bits = [](I128 v) {
    U128 u = v < 0 ? static_cast<U128>(-v) : static_cast<U128>(v);
    int n = 0;
    while (u) {
      ++n;
      u >>= 1;
    }
    return n;
  };
  while (bits(ma) + bits(mb) > 125) {
    if (scale == 0) return std::nullopt;
    if (bits(ma) >= bits(mb))
      ma = divRound(ma, 1);
    else
      mb = divRound(mb, 1);
    --scale;
  }
  return reduceScale(ma * mb, scale);
}

std::optional<Decimal> decDiv(const Decimal& a, const Decimal& b) {
  if (decIsZero(b)) return std::nullopt;
  Decimal x = decNormalize(a), y = decNormalize(b);
  // result = (ma / 10^sa) / (mb / 10^sb) = ma * 10^(sb + k) / mb / 10^(sa + k)...
  int target = Decimal::kDivisionScale;
  I128 ma = mant(x), mb = mant(y);
  int shift = target + y.scale() - x.scale() + 1;  // one guard digit
  I128 num = ma;
  int scale = target + 1;
  if (shift >= 0) {
    for (int i = 0; i < shift; ++i) {
      if (num > kLimit || num < -kLimit) {
        // Too large to shift further; lose guard precision.
        --scale;
        continue;
      }
      num *= 10;
    }
  } else {
    mb *= pow10(-shift);
  }
  I128 q = num / mb;
  Decimal d = make(divRound(q, 1), scale - 1);
  return decNormalize(d);
}

Decimal decRound(const Decimal& a, int digits) {
  if (digits >= a.scale()) return a;
  return make(divRound(mant(a), a.scale() - digits), digits);
}

Decimal decTruncate(const Decimal& a) { return make(mant(a) / pow10(a.scale()), 0); }

Decimal decFloor(const Decimal& a) {
  I128 m = mant(a), p = pow10(a.scale());
  I128 q = m / p;
  if (m % p != 0 && m < 0) q -= 1;
  return make(q, 0);
}

Decimal decCeiling(const Decimal& a) {
  I128 m = mant(a), p = pow10(a.scale());
  I128 q = m / p;
  if (m % p != 0 && m > 0) q += 1;
  return make(q, 0);
}

bool decIsZero(const Decimal& a) { return mant(a) == 0; }
bool decIsNegative(const Decimal& a) { return mant(a) < 0; }

std::optional<std::int64_t> decToInt64(const Decimal& a) {
  if (!a.isInteger()) return std::nullopt;
  I128 v = mant(a) / pow10(a.scale());
  if (v > INT64_MAX || v < INT64_MIN) return std::nullopt;
  return static_cast<std::int64_t>(v);
}

Decimal decWithScale(const Decimal& a, int scale) {
  if (scale >= a.scale()) return make(mant(a) * pow10(scale - a.scale()), scale);
  return make(divRound(mant(a), a.scale() - scale), scale);
}

Decimal decNormalize(const Decimal& a) {
  I128 m = mant(a);
  int s = a.scale();
  while (s > 0 && m % 10 == 0) {
    m /= 10;
    --s;
  }
  return make(m, s);
}

// ---------------------------------------------------------------- Temporal

namespace {

bool readInt(std::string_view s, std::size_t& i, int n, int& out) {
  if (i + n > s.size()) return false;
  int v = 0;
  for (int k = 0; k < n; ++k) {
    char c = s[i + k];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  i += n;
  return true;
}

bool parseTime(std::string_view s, std::size_t& i, Temporal& t) {
  if (!readInt(s, i, 2, t.hour) || t.hour > 23) return false;
  t.precision = Precision::kHour;
  if (i < s.size() && s[i] == ':') {
    ++i;
    if (!readInt(s, i, 2, t.minute) || t.minute > 59) return false;
    t.precision = Precision::kMinute;
    if (i < s.size() && s[i] == ':') {
      ++i;
      if (!readInt(s, i, 2, t.second) || t.second > 59) return false;
      t.precision = Precision::kSecond;
      if (i < s.size() && s[i] == '.') {
        ++i;
        std::size_t start = i;
        int ms = 0, n = 0;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
          if (n < 3) ms = ms * 10 + (s[i] - '0');
          ++n;
          ++i;
        }
        if (i == start) return false;
        for (int k = n; k < 3; ++k) ms *= 10;
        t.millisecond = ms;
        t.precision = Precision::kMillisecond;
      }
    }
  }
  return true;
}

bool parseZone(std::string_view s, std::size_t& i, Temporal& t) {
  if (i >= s.size()) return true;
  if (s[i] == 'Z') {
    t.tzOffsetMinutes = 0;
    ++i;
    return true;
  }
  if (s[i] == '+' || s[i] == '-') {
    int sign = s[i] == '-' ? -1 : 1;
    ++i;
    int h = 0, m = 0;
    if (!readInt(s, i, 2, h)) return false;
    if (i >= s.size() || s[i] != ':') return false;
    ++i;
    if (!readInt(s, i, 2, m)) return false;
    if (h > 14 || m > 59) return false;
    t.tzOffsetMinutes = sign * (h * 60 + m);
    return true;
  }
  return false;
}

int daysInMonth(int y, int m) {
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
  return kDays[(m - 1) % 12];
}

// Days since 1970-01-01 (proleptic Gregorian).
long long daysFromCivil(long long y, unsigned m, unsigned d) {
  y -= m <= 2;
  const long long era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<long long>(doe) - 719468;
}

void civilFromDays(long long z, int& y, int& m, int& d) {
  z += 719468;
  const long long era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  long long yy = static_cast<long long>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  y = static_cast<int>(yy + (m <= 2));
}

// Field values as an array in precision order.
void fields(const Temporal& t, long long out[7]) {
  out[0] = t.year;
  out[1] = t.month;
  out[2] = t.day;
  out[3] = t.hour;
  out[4] = t.minute;
  out[5] = t.second;
  out[6] = t.millisecond;
}

// Shifts a DateTime to UTC (when it has an offset), keeping its precision.
Temporal toUtc(const Temporal& t) {
  if (!t.tzOffsetMinutes || *t.tzOffsetMinutes == 0) return t;
  Temporal r = t;
  long long days = daysFromCivil(t.year, t.month, t.day);
  long long minutes = days * 1440 + t.hour * 60 + t.minute - *t.tzOffsetMinutes;
  long long d = minutes >= 0 ? minutes / 1440 : -((-minutes + 1439) / 1440);
  long long rem = minutes - d * 1440;
  civilFromDays(d, r.year, r.month, r.day);
  r.hour = static_cast<int>(rem / 60);
  r.minute = static_cast<int>(rem % 60);
  r.tzOffsetMinutes = 0;
  return r;
}

}  // namespace

std::optional<Temporal> Temporal::parse(std::string_view s, TemporalKind kind) {
  Temporal t;
  t.kind = kind;
  std::size_t i = 0;
  if (kind == TemporalKind::kTime) {
    if (!parseTime(s, i, t)) return std::nullopt;
    if (i != s.size()) return std::nullopt;
    return t;
  }
  if (!readInt(s, i, 4, t.year)) return std::nullopt;
  t.precision = Precision::kYear;
  if (i < s.size() && s[i] == '-') {
    ++i;
    if (!readInt(s, i, 2, t.month) || t.month < 1 || t.month > 12) return std::nullopt;
    t.precision = Precision::kMonth;
    if (i < s.size() && s[i] == '-') {
      ++i;
      if (!readInt(s, i, 2, t.day) || t.day < 1 || t.day > daysInMonth(t.year, t.month))
        return std::nullopt;
      t.precision = Precision::kDay;
    }
  }
  if (i < s.size() && s[i] == 'T') {
    if (kind == TemporalKind::kDate) return std::nullopt;
    ++i;
    if (i < s.size()) {
      if (t.precision != Precision::kDay) return std::nullopt;
      if (!parseTime(s, i, t)) return std::nullopt;
    }
  } else if (kind == TemporalKind::kDateTime && i < s.size() && t.precision == Precision::kDay) {
    // a timezone directly after a date is not allowed
    return std::nullopt;
  }
  if (kind == TemporalKind::kDateTime && t.precision >= Precision::kHour) {
    if (!parseZone(s, i, t)) return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  return t;
}

std::string Temporal::toString() const {
  std::string out;
  auto timePart = [&]() {
    out += twoDigits(hour);
    if (precision >= Precision::kMinute) {
      out += ':';
      out += twoDigits(minute);
    }
    if (precision >= Precision::kSecond) {
      out += ':';
      out += twoDigits(second);
    }
    if (precision >= Precision::kMillisecond) {
      char buf[8];
      std::snprintf(buf, sizeof buf, ".%03d", millisecond);
      out += buf;
    }
  };
  if (kind == TemporalKind::kTime) {
    timePart();
    return out;
  }
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04d", year);
  out = buf;
  if (precision >= Precision::kMonth) {
    out += '-';
    out += twoDigits(month);
  }
  if (precision >= Precision::kDay) {
    out += '-';
    out += twoDigits(day);
  }
  if (kind == TemporalKind::kDateTime && precision >= Precision::kHour) {
    out += "T";
    timePart();
    if (tzOffsetMinutes) {
      int off = *tzOffsetMinutes;
      if (off == 0) {
        out += "Z";
      } else {
        out += off < 0 ? "-" : "+";
        off = std::abs(off);
        out += twoDigits(off / 60);
        out += ':';
        out += twoDigits(off % 60);
      }
    }
  }
  return out;
}

int precisionDigits(const Temporal& t) { return static_cast<int>(t.precision); }

std::optional<int> temporalCompare(const Temporal& a0, const Temporal& b0) {
  Temporal a = a0, b = b0;
  if (a.kind != TemporalKind::kTime && (a.tzOffsetMinutes || b.tzOffsetMinutes) &&
      a.precision >= Precision::kHour && b.precision >= Precision::kHour) {
    // One side with and one without a timezone cannot be ordered.
    if (a.tzOffsetMinutes.has_value() != b.tzOffsetMinutes.has_value()) return std::nullopt;
    a = toUtc(a);
    b = toUtc(b);
  }
  long long fa[7], fb[7];
  fields(a, fa);
  fields(b, fb);
  int start = a.kind == TemporalKind::kTime ? 3 : 0;
  int pa = static_cast<int>(a.precision), pb = static_cast<int>(b.precision);
  // Seconds and milliseconds are one precision for comparison.
  auto norm = [](int p) { return p == static_cast<int>(Precision::kMillisecond) ? 5 : p; };
  int common = std::min(norm(pa), norm(pb));
  for (int i = start; i <= common; ++i) {
    long long va = fa[i], vb = fb[i];
    if (i == 5) {
      va = fa[5] * 1000 + fa[6];
      vb = fb[5] * 1000 + fb[6];
    }
    if (va != vb) return va < vb ? -1 : 1;
  }
  if (norm(pa) != norm(pb)) return std::nullopt;
  return 0;
}

std::optional<Temporal> temporalAdd(const Temporal& t, const Decimal& amount,
                                    const std::string& unit) {
  Temporal r = t;
  auto whole = decToInt64(decTruncate(amount));
  if (!whole) return std::nullopt;
  long long n = *whole;
  if (unit == "year" || unit == "month") {
    if (r.kind == TemporalKind::kTime) return std::nullopt;
    long long months = unit == "year" ? n * 12 : n;
    if (unit == "month" && r.precision < Precision::kMonth) {
      // Month arithmetic on a year-precision value works in whole years.
      months = (n / 12) * 12;
    }
    long long total = static_cast<long long>(r.year) * 12 + (r.month - 1) + months;
    r.year = static_cast<int>(total / 12);
    r.month = static_cast<int>(total % 12) + 1;
    r.day = std::min(r.day, daysInMonth(r.year, r.month));
    if (r.year < 1 || r.year > 9999) return std::nullopt;
    return r;
  }
  long long ms = 0;
  if (unit == "week")
    ms = n * 7LL * 86400000LL;
  else if (unit == "day")
    ms = n * 86400000LL;
  else if (unit == "hour")
    ms = n * 3600000LL;
  else if (unit == "minute")
    ms = n * 60000LL;
  else if (unit == "second")
    ms = n * 1000LL;
  else if (unit == "millisecond")
    ms = n;
  else
    return std::nullopt;
  if (r.kind == TemporalKind::kTime) {
    long long cur = ((r.hour * 60LL + r.minute) * 60 + r.second) * 1000 + r.millisecond;
    cur = ((cur + ms) % 86400000LL + 86400000LL) % 86400000LL;
    r.millisecond = static_cast<int>(cur % 1000);
    cur /= 1000;
    r.second = static_cast<int>(cur % 60);
    cur /= 60;
    r.minute = static_cast<int>(cur % 60);
    r.hour = static_cast<int>(cur / 60);
    return r;
  }
  // Below the value's precision, the amount is truncated to whole units of its precision.
  long long unitMs[] = {0, 0, 86400000LL, 3600000LL, 60000LL, 1000LL, 1LL};
  int p = static_cast<int>(r.precision);
  if (p < 2) return r;  // year/month precision: only whole years or months change the value
  long long step = unitMs[p];
  ms = (ms / step) * step;
  long long days = daysFromCivil(r.year, r.month, r.day);
  long long cur =
      days * 86400000LL + ((r.hour * 60LL + r.minute) * 60 + r.second) * 1000 + r.millisecond + ms;
  long long d = cur >= 0 ? cur / 86400000LL : -((-cur + 86399999LL) / 86400000LL);
  long long rem = cur - d * 86400000LL;
  civilFromDays(d, r.year, r.month, r.day);
  r.millisecond = static_cast<int>(rem % 1000);
  rem /= 1000;
  r.second = static_cast<int>(rem % 60);
  rem /= 60;
  r.minute = static_cast<int>(rem % 60);
  r.hour = static_cast<int>(rem / 60);
  return r;
}

// ---------------------------------------------------------------- Quantity

std::optional<std::string> calendarUnit(std::string_view u) {
  static const std::map<std::string, std::string, std::less<>> kUnits = {
      {"year", "year"},
      {"years", "year"},
      {"month", "month"},
      {"months", "month"},
      {"week", "week"},
      {"weeks", "week"},
      {"day", "day"},
      {"days", "day"},
      {"hour", "hour"},
      {"hours", "hour"},
      {"minute", "minute"},
      {"minutes", "minute"},
      {"second", "second"},
      {"seconds", "second"},
      {"millisecond", "millisecond"},
      {"milliseconds", "millisecond"}};
  auto it = kUnits.find(u);
  if (it == kUnits.end()) return std::nullopt;
  return it->second;
}

namespace {

// UCUM units we convert: factor to a base unit, and the dimension's name.
struct UnitDef {
  const char* dimension;
  const char* factor;  // decimal text, multiply to reach the base unit
};

const std::map<std::string, UnitDef, std::less<>>& ucumUnits() {
  static const std::map<std::string, UnitDef, std::less<>> kUnits = {
      // mass (base g)
      {"kg", {"mass", "1000"}},
      {"g", {"mass", "1"}},
      {"mg", {"mass", "0.001"}},
      {"ug", {"mass", "0.000001"}},
      {"ng", {"mass", "0.000000001"}},
      {"[lb_av]", {"mass", "453.59237"}},
      {"[oz_av]", {"mass", "28.349523125"}},
      // length (base m)
      {"km", {"length", "1000"}},
      {"m", {"length", "1"}},
      {"cm", {"length", "0.01"}},
      {"mm", {"length", "0.001"}},
      {"um", {"length", "0.000001"}},
      {"nm", {"length", "0.000000001"}},
      {"[in_i]", {"length", "0.0254"}},
      {"[ft_i]", {"length", "0.3048"}},
      // volume (base L)
      {"L", {"volume", "1"}},
      {"l", {"volume", "1"}},
      {"dL", {"volume", "0.1"}},
      {"mL", {"volume", "0.001"}},
      {"ml", {"volume", "0.001"}},
      {"uL", {"volume", "0.000001"}},
      // time (base s); calendar-length definitions of UCUM
      {"s", {"time", "1"}},
      {"ms", {"time", "0.001"}},
      {"min", {"time", "60"}},
      {"h", {"time", "3600"}},
      {"d", {"time", "86400"}},
      {"wk", {"time", "604800"}},
      {"mo", {"time", "2629800"}},
      {"a", {"time", "31557600"}},
      // amount
      {"mol", {"amount", "1"}},
      {"mmol", {"amount", "0.001"}},
      {"umol", {"amount", "0.000001"}},
      // pressure
      {"mm[Hg]", {"pressure", "1"}},
      // dimensionless
      {"1", {"one", "1"}},
      {"%", {"one", "0.01"}},
      // temperature has offsets; only identical units compare
      {"Cel", {"celsius", "1"}},
      {"[degF]", {"fahrenheit", "1"}},
  };
  return kUnits;
}

// Calendar word -> UCUM definite-duration unit used for comparison.
std::optional<std::string> calendarToUcum(const std::string& cal) {
  if (cal == "week") return "wk";
  if (cal == "day") return "d";
  if (cal == "hour") return "h";
  if (cal == "minute") return "min";
  if (cal == "second") return "s";
  if (cal == "millisecond") return "ms";
  if (cal == "year") return "a";
  if (cal == "month") return "mo";
  return std::nullopt;
}

}  // namespace

std::optional<int> quantityCompare(const Quantity& a, const Quantity& b, bool equivalence) {
  std::string ua = a.unit.empty() ? "1" : a.unit, ub = b.unit.empty() ? "1" : b.unit;
  if (ua == ub) return a.value.compare(b.value);
  auto ca = calendarUnit(ua), cb = calendarUnit(ub);
  if (ca && cb) {
    if (*ca == *cb) return a.value.compare(b.value);
    // Calendar durations above weeks do not convert to each other for equality.
    if (*ca == "year" || *ca == "month" || *cb == "year" || *cb == "month") return std::nullopt;
  }
  if (ca || cb) {
    // A calendar duration equals its UCUM definite counterpart only for week and below, and
    // for equivalence year ~ 'a', month ~ 'mo'.
    std::string cal = ca ? *ca : *cb;
    if ((cal == "year" || cal == "month") && !equivalence) return std::nullopt;
    if (ca) ua = *calendarToUcum(*ca);
    if (cb) ub = *calendarToUcum(*cb);
    if (ua == ub) return a.value.compare(b.value);
  }
  const auto& units = ucumUnits();
  auto ia = units.find(ua), ib = units.find(ub);
  if (ia == units.end() || ib == units.end()) return std::nullopt;
  if (std::string_view(ia->second.dimension) != ib->second.dimension) return std::nullopt;
  auto fa = decMul(a.value, *Decimal::parse(ia->second.factor));
  auto fb = decMul(b.value, *Decimal::parse(ib->second.factor));
  if (!fa || !fb) return std::nullopt;
  if (equivalence) {
    // Equivalence compares at the precision of the least precise operand.
    int s = std::min(decNormalize(a.value).scale(), decNormalize(b.value).scale());
    return decRound(*fa, s).compare(decRound(*fb, s));
  }
  return fa->compare(*fb);
}

std::optional<Quantity> quantityConvert(const Quantity& q, std::string_view target) {
  std::string from = q.unit.empty() ? "1" : q.unit;
  if (from == target) return q;
  if (auto cal = calendarUnit(from)) {
    if (*cal == "year" || *cal == "month") return std::nullopt;
    from = *calendarToUcum(*cal);
  }
  std::string to(target);
  if (auto cal = calendarUnit(to)) {
    if (*cal == "year" || *cal == "month") return std::nullopt;
    to = *calendarToUcum(*cal);
  }
  const auto& units = ucumUnits();
  auto ia = units.find(from), ib = units.find(to);
  if (ia == units.end() || ib == units.end()) return std::nullopt;
  if (std::string_view(ia->second.dimension) != ib->second.dimension) return std::nullopt;
  if (std::string_view(ia->second.dimension) == "celsius" ||
      std::string_view(ia->second.dimension) == "fahrenheit")
    return std::nullopt;
  auto base = decMul(q.value, *Decimal::parse(ia->second.factor));
  if (!base) return std::nullopt;
  auto v = decDiv(*base, *Decimal::parse(ib->second.factor));
  if (!v) return std::nullopt;
  return Quantity{decNormalize(*v), std::string(target)};
}

std::optional<std::string> baseUnitOf(std::string_view unit) {
  static const std::map<std::string, std::string, std::less<>> kBase = {
      {"mass", "g"}, {"length", "m"}, {"volume", "L"}, {"time", "s"}, {"amount", "mol"}};
  const auto& units = ucumUnits();
  auto it = units.find(unit);
  if (it == units.end()) return std::nullopt;
  auto b = kBase.find(it->second.dimension);
  if (b == kBase.end()) return std::nullopt;
  return b->second;
}

}  // namespace switchboard::fhirpath
