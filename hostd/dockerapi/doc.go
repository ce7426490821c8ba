// Package dockerapi serves the subset of the Docker Engine API that the
// stock docker CLI needs for ps, images, pull, run, logs, stop, kill, start,
// rm, exec, inspect, rmi and wait, backed by hostd's engine. hostd serves it
// on /run/docker.sock when configured (root only, peer credentials checked).
package dockerapi
