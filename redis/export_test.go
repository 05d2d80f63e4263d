package redis

// CanDecline exports canDecline to the tests.
const CanDecline = canDecline
