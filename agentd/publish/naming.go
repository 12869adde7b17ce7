package publish

import (
	"fmt"
	"regexp"
	"strings"
)

// maxNameBase is the longest sanitised domain-name prefix: with "-" and 8 UUID hex digits the
// object name stays within 63 characters (a DNS-1123 label, so it also fits label values).
const maxNameBase = 63 - 1 - 8

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// NormalizeUUID returns the canonical lower-case form of a domain UUID, or an error when it is not
// an 8-4-4-4-12 hex UUID.
func NormalizeUUID(uuid string) (string, error) {
	u := strings.ToLower(strings.TrimSpace(uuid))
	if !uuidRE.MatchString(u) {
		return "", fmt.Errorf("invalid domain UUID %q", uuid)
	}
	return u, nil
}

// ObjectName returns the GuestAgentStatus name of a domain: the domain name sanitised to a
// DNS-1123 label (lower case, every other character replaced by '-', runs of '-' collapsed,
// trimmed, at most 54 characters; "domain" when nothing is left), then "-" and the first 8 hex
// digits of the UUID. It depends only on the domain, never on the node, so a migrated domain keeps
// its object. The result is at most 63 characters. uuid must be normalised (NormalizeUUID).
func ObjectName(domainName, uuid string) string {
	return sanitizeName(domainName) + "-" + uuid[:8]
}

func sanitizeName(name string) string {
	var b strings.Builder
	b.Grow(min(len(name), maxNameBase))
	dash := true // suppresses leading dashes and runs
	for _, r := range strings.ToLower(name) {
		if b.Len() >= maxNameBase {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
			continue
		}
		if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.TrimRight(b.String(), "-")
	if s == "" {
		return "domain"
	}
	return s
}
