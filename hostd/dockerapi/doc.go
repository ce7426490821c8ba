// Package dockerapi serves the subset of the Docker Engine API that the
// stock docker CLI needs (ps and images with Docker's filters, pull, run,
// logs, stop, kill, start, rm, exec, inspect, rmi, wait, rename, tag,
// prune, top, stats, pause, diff, volumes, system df, save, load, history,
// commit, push, login), backed by hostd's
// engine. What it does not implement it refuses by name (unknown filters,
// create options) rather than ignoring. hostd serves it on
// /run/docker.sock when configured (root only, peer credentials checked).
package dockerapi
