# Does not compile.
my $app = sub { return [200, [], ['x']] ;
