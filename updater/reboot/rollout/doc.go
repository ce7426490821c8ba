// Package rollout decides when a host may take a channel's new version: a
// channel carries a rollout (start, duration, paused) and each host waits by
// its stable wariness in [0, 1], hashed from /etc/machine-id, as Zincati's
// rollout_wariness does. The updater's channel file embeds Rollout.
package rollout
