package reboot

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// zincatiAppID is Zincati's application id (de35106b6ec24688b63afddaa156679b).
// Lock holders are named as Zincati names them, so a Bulkhead host and a
// Fedora CoreOS host on the same machine-id would be the same holder, and
// the raw machine-id, which machine-id(5) says to keep confidential, never
// leaves the host.
var zincatiAppID = [16]byte{0xde, 0x35, 0x10, 0x6b, 0x6e, 0xc2, 0x46, 0x88, 0xb6, 0x3a, 0xfd, 0xda, 0xa1, 0x56, 0x67, 0x9b}

// AppSpecificID is systemd's sd_id128_get_machine_app_specific(): HMAC-SHA256
// keyed with the machine id over the application id, truncated to 128 bits
// and stamped as a version 4 UUID. It returns lowercase hex without dashes,
// as Zincati sends it.
func AppSpecificID(machineID string, app [16]byte) (string, error) {
	raw, err := hex.DecodeString(strings.TrimSpace(machineID))
	if err != nil || len(raw) != 16 {
		return "", fmt.Errorf("machine id %q is not 32 hex digits", strings.TrimSpace(machineID))
	}
	mac := hmac.New(sha256.New, raw)
	mac.Write(app[:])
	id := mac.Sum(nil)[:16]
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	return hex.EncodeToString(id), nil
}

// HostID is this host's lock-holder id: Zincati's app-specific id of
// /etc/machine-id under root.
func HostID(root fsroot.Root) (string, error) {
	path := root.Join("/etc/machine-id")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading machine id: %w", err)
	}
	id, err := AppSpecificID(string(b), zincatiAppID)
	if err != nil {
		return "", fmt.Errorf("reading machine id from %s: %w", path, err)
	}
	return id, nil
}
