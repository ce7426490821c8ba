// Package dialstdio is `docker system dial-stdio` for a host without the
// docker CLI: what a remote docker client runs over ssh when its
// DOCKER_HOST is ssh://user@host. It joins its standard input and output
// to hostd's Docker API socket, and refuses every other docker command,
// saying how to reach the socket instead. The image installs it as
// /usr/bin/docker, a name of the small hostd-shim binary.
package dialstdio
