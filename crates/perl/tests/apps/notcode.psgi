# Its value is not a code reference.
my $app = { not => 'code' };
