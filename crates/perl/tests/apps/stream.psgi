# Streams three pieces, then ends; /harakiri asks the worker to exit after its response; /errors
# writes to psgi.errors.
sub {
    my $env = shift;
    if ($env->{PATH_INFO} eq '/errors') {
        $env->{'psgi.errors'}->print("psgi.errors line from ", $env->{REQUEST_URI}, "\n");
        $env->{'psgi.errors'}->printf("%s=%d\n", 'answer', 42);
        return [200, ['Content-Type' => 'text/plain'], ['logged']];
    }
    if ($env->{PATH_INFO} eq '/harakiri') {
        $env->{'psgix.harakiri.commit'} = 1 if $env->{'psgix.harakiri'};
        return [200, ['Content-Type' => 'text/plain'], ["pid $$"]];
    }
    if ($env->{PATH_INFO} eq '/pid') {
        return [200, ['Content-Type' => 'text/plain'], ["pid $$"]];
    }
    return sub {
        my $w = $_[0]->([200, ['Content-Type' => 'text/plain']]);
        $w->write("piece $_\n") for 1 .. 3;
        $w->close;
    };
};
