// Package window is maintenance-window arithmetic: given allowed weekdays, a
// wall-clock start and a length or end in a time zone, the next instant a
// host may reboot. Pure functions, correct across DST changes; the only file
// it reads is the time zone (LoadLocation, under a root).
package window
