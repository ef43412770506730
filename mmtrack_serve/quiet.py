"""How our warnings print: our own as one line each, the stack's chatter off."""
import warnings


def quiet_warnings():
    """Our own warnings as one line each; the stack's deprecation chatter off."""
    warnings.filterwarnings('ignore')
    warnings.filterwarnings('default', module=r'mmtrack_serve(\.|$)')
    warnings.formatwarning = lambda message, *args, **kwargs: f'warning: {message}\n'
