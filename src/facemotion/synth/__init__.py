"""facemotion.synth"""
