import { ISessionContext } from '@jupyterlab/apputils';
import { Signal } from '@lumino/signaling';

import { ILinkComm } from '../comm';
import { SessionLink } from '../link';

/**
 * A notebook's session context reduced to what SessionLink reads, with a kernel connection
 * that hands out `comm`. JupyterLab's own objects need a running server; the browser tests
 * (tests/lab/) drive the real ones.
 */
function contextWith(comm: ILinkComm): ISessionContext {
  const owner = {};
  return {
    statusChanged: new Signal(owner),
    kernelChanged: new Signal(owner),
    kernelDisplayStatus: 'idle',
    session: { kernel: { handleComms: true, createComm: () => comm } }
  } as unknown as ISessionContext;
}

function commThatCannotClose(): ILinkComm & { disposed: boolean; opened: boolean } {
  return {
    commId: 'link-spec-comm',
    disposed: false,
    opened: false,
    onMsg: () => undefined,
    onClose: () => undefined,
    open() {
      this.opened = true;
    },
    send: () => undefined,
    close: () => {
      // What @jupyterlab/services' CommHandler does once its kernel connection is disposed.
      throw new Error('Cannot close');
    },
    dispose() {
      this.disposed = true;
    }
  };
}

const metadata = { get: () => undefined, set: () => undefined };

describe('SessionLink.dispose', () => {
  it('finishes when the kernel connection went first, and lets go of the comm', () => {
    const comm = commThatCannotClose();
    const link = new SessionLink(contextWith(comm), metadata);
    expect(comm.opened).toBe(true); // subscribed at once: the kernel was idle
    expect(() => link.dispose()).not.toThrow();
    expect(comm.disposed).toBe(true);
    return expect(link.request({ action: 'status' })).rejects.toThrow('not connected');
  });
});
