"""Calendar connections: CalDAV accounts and ICS feeds, their busy times, and bookings
written back. `resync` listens for changes to the window calendars are read for."""
