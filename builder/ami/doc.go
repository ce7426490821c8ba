// Package ami publishes a build's disk.raw as an Amazon Machine Image: it
// uploads the image as an EBS snapshot through the EBS direct APIs (only
// its non-zero 512 KiB blocks, in parallel, resumable from a state file),
// registers the AMI, copies it to other regions and shares it. `builder
// ami` calls it; it reads out/<name>/ and writes ami.json and
// ami-upload.json there.
package ami
