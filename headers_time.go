package llmhttp

import (
	"net/http"
	"time"
)

// This file holds fast paths for the time values of rate-limit headers in
// the shapes providers send: RFC 3339 resets ("2025-08-21T12:40:59Z"), Go
// durations ("6ms", "7.66s", "2m59.56s") and the Date header ("Thu, 21 Aug
// 2025 12:40:58 GMT"). Each accepts a strict subset of what the standard
// library parser it stands in for accepts, parses it to exactly the same
// value, and reports false for anything else, which the caller then hands
// to that parser. They exist because the headers are read on every
// response, and the generic parsers spend most of their time on layouts
// and cases these values never use.

// looksRFC3339 reports whether s has the shape of an RFC 3339 date-time
// ("2006-01-02T…"), as opposed to a number or a duration.
func looksRFC3339(s string) bool {
	return len(s) >= 20 && s[4] == '-' && s[7] == '-' && (s[10] == 'T' || s[10] == 't')
}

// parseRFC3339 parses the common RFC 3339 instant "2006-01-02T15:04:05",
// with an optional fraction of one to nine digits, then "Z" or a ±hh:mm
// offset, to the instant [time.Parse] with [time.RFC3339Nano] gives (its
// location aside, which no caller looks at). It reports false for anything
// else, valid or not: a lowercase t or z, a comma, ten fraction digits or
// more, an out-of-range field.
func parseRFC3339(s string) (time.Time, bool) {
	if len(s) < len("2006-01-02T15:04:05Z") ||
		s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := atoiFixed(s[0:4])
	month, ok2 := atoiFixed(s[5:7])
	day, ok3 := atoiFixed(s[8:10])
	hour, ok4 := atoiFixed(s[11:13])
	minute, ok5 := atoiFixed(s[14:16])
	sec, ok6 := atoiFixed(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || !validClock(year, month, day, hour, minute, sec) {
		return time.Time{}, false
	}
	s = s[19:]
	nsec := 0
	if s[0] == '.' {
		n := 1 // s[:n] is the fraction with its point
		for n < len(s) && isDigit(s[n]) {
			n++
		}
		if n == 1 || n > 10 {
			return time.Time{}, false
		}
		nsec, _ = atoiFixed(s[1:n])
		for range 10 - n {
			nsec *= 10
		}
		s = s[n:]
	}
	offset := 0 // seconds east of UTC
	switch {
	case s == "Z":
	case len(s) == len("-07:00") && (s[0] == '+' || s[0] == '-') && s[3] == ':':
		hh, ok1 := atoiFixed(s[1:3])
		mm, ok2 := atoiFixed(s[4:6])
		if !ok1 || !ok2 || hh > 23 || mm > 59 {
			return time.Time{}, false
		}
		if offset = (hh*60 + mm) * 60; s[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), true
}

// parseHTTPDate is [http.ParseTime] with a fast path for the IMF-fixdate
// every server sends ("Thu, 21 Aug 2025 12:40:58 GMT", [http.TimeFormat]).
func parseHTTPDate(s string) (time.Time, error) {
	if t, ok := parseIMFFixdate(s); ok {
		return t, nil
	}
	return http.ParseTime(s)
}

// parseIMFFixdate parses an IMF-fixdate with a day and month name spelt as
// in [http.TimeFormat] and fields in range, to the instant [time.Parse] with
// that layout gives. Like it, it does not check that the day name matches
// the date. It reports false for anything else.
func parseIMFFixdate(s string) (time.Time, bool) {
	if len(s) != len(http.TimeFormat) || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
		s[16] != ' ' || s[19] != ':' || s[22] != ':' || s[25:] != " GMT" || !isDayName(s[0:3]) {
		return time.Time{}, false
	}
	month := monthNumber(s[8:11])
	day, ok1 := atoiFixed(s[5:7])
	year, ok2 := atoiFixed(s[12:16])
	hour, ok3 := atoiFixed(s[17:19])
	minute, ok4 := atoiFixed(s[20:22])
	sec, ok5 := atoiFixed(s[23:25])
	if !(ok1 && ok2 && ok3 && ok4 && ok5) || !validClock(year, month, day, hour, minute, sec) {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC), true
}

// isDayName reports whether s is a day name as [http.TimeFormat] spells it.
func isDayName(s string) bool {
	switch s {
	case "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun":
		return true
	}
	return false
}

// monthNumber returns the number of the month s names as [http.TimeFormat]
// spells it, or 0.
func monthNumber(s string) int {
	switch s {
	case "Jan":
		return 1
	case "Feb":
		return 2
	case "Mar":
		return 3
	case "Apr":
		return 4
	case "May":
		return 5
	case "Jun":
		return 6
	case "Jul":
		return 7
	case "Aug":
		return 8
	case "Sep":
		return 9
	case "Oct":
		return 10
	case "Nov":
		return 11
	case "Dec":
		return 12
	}
	return 0
}

// validClock reports whether the fields name a real date (no February 30)
// and time of day (no leap second), as the time package's parsers require.
func validClock(year, month, day, hour, minute, sec int) bool {
	return month >= 1 && month <= 12 && day >= 1 && day <= daysIn(month, year) &&
		hour <= 23 && minute <= 59 && sec <= 59
}

// daysIn returns the number of days in a month of the proleptic Gregorian
// calendar.
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// atoiFixed parses s, one to nine decimal digits and nothing else.
func atoiFixed(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

// parseShortDuration parses the common shapes of a Go duration in a reset
// ("6ms", "1s", "7.66s", "6m0s", "2m59.56s"): numbers of h, m, s and ms,
// each a whole number of at most six digits with an optional fraction of
// one to nine digits, adding up to at most maxResetAhead. It parses them to
// the value [time.ParseDuration] gives, computed the same way. It reports
// false for anything else (another unit, a sign, a bare or leading point, a
// longer duration), which time.ParseDuration then parses.
func parseShortDuration(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	var d time.Duration
	for s != "" {
		i := 0
		var n int64
		for i < len(s) && isDigit(s[i]) {
			if i == 6 {
				return 0, false // 10⁶ hours would overflow below
			}
			n = n*10 + int64(s[i]-'0')
			i++
		}
		if i == 0 {
			return 0, false
		}
		s = s[i:]
		var frac int64
		scale := 1.0
		if s != "" && s[0] == '.' {
			i := 1
			for i < len(s) && isDigit(s[i]) {
				if i == 10 {
					return 0, false
				}
				frac = frac*10 + int64(s[i]-'0')
				scale *= 10
				i++
			}
			if i == 1 {
				return 0, false
			}
			s = s[i:]
		}
		var unit time.Duration
		switch {
		case len(s) >= 2 && s[0] == 'm' && s[1] == 's':
			unit, s = time.Millisecond, s[2:]
		case len(s) >= 1 && s[0] == 's':
			unit, s = time.Second, s[1:]
		case len(s) >= 1 && s[0] == 'm':
			unit, s = time.Minute, s[1:]
		case len(s) >= 1 && s[0] == 'h':
			unit, s = time.Hour, s[1:]
		default:
			return 0, false
		}
		v := time.Duration(n) * unit
		if frac > 0 {
			// time.ParseDuration's own arithmetic, for the same rounding.
			v += time.Duration(uint64(float64(frac) * (float64(unit) / scale)))
		}
		if d += v; d > maxResetAhead {
			return 0, false
		}
	}
	return d, true
}
