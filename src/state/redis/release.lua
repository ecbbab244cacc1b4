
-- release: ARGV[2] reservation id.
release(ARGV[2])
return 0
